# materializer — build, test and tool targets. `make` alone lists them.
#
# Tools are pinned and built into .cache/ (git-ignored; `make clean` removes
# it) from scratch modules, so the repository's go.mod stays untouched and a
# clean clone on a machine with only Go can run `make test`.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO      ?= go
CACHE   := $(CURDIR)/.cache
TOOLBIN := $(CACHE)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Pinned tool versions (bump deliberately, in their own commit).
STATICCHECK_VERSION := v0.8.2
VERSITYGW_VERSION   := v1.8.0
PROMTOOL_VERSION    := v0.316.0

STATICCHECK := $(TOOLBIN)/staticcheck
export VERSITYGW ?= $(TOOLBIN)/versitygw
export PROMTOOL ?= $(TOOLBIN)/promtool

# Narrow test runs: `make test PKG=./conf/... RUN=TestValidate`.
PKG ?= ./...
RUN ?=
RUNFLAG := $(if $(RUN),-run '$(RUN)',)

.PHONY: help build run test bench lint crash soak tools clean

help: ## list the targets
	@echo "materializer — make targets:"
	@grep -hE '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-7s %s\n", $$1, $$2 }'
	@echo "variables: PKG=./conf/... RUN=TestName narrow test/bench/crash/soak runs"

build: ## build bin/materializer
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/materializer ./daemon

run: build ## the demo: Nakadi emulator, NATS and the daemon in one process; files under ./var
	bin/materializer demo

test: tools ## the whole suite with -race (what CI runs)
	$(GO) test -race -tags invariants -timeout 20m $(RUNFLAG) $(PKG)

bench: ## benchmarks with allocations, no tests
	$(GO) test -run '^$$' -bench '$(if $(RUN),$(RUN),.)' -benchmem $(PKG)

lint: $(STATICCHECK) $(TOOLBIN)/promtool ## gofmt, go vet, staticcheck and promtool check rules
	@unformatted=$$(gofmt -l $$($(GO) list -f '{{.Dir}}' $(PKG)) | sort -u); \
	if [[ -n $$unformatted ]]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKG)
	$(STATICCHECK) $(PKG)
	$(PROMTOOL) check rules systemd/monitoring/alerts.yml

crash: tools ## crash/fault tests (kill -9 at failpoints), MATERIALIZER_CRASH=1
	MATERIALIZER_CRASH=1 $(GO) test -count=1 -timeout 60m $(RUNFLAG) $(PKG)

soak: tools ## long soak tests, MATERIALIZER_SOAK=1
	MATERIALIZER_SOAK=1 $(GO) test -count=1 -timeout 120m $(RUNFLAG) $(PKG)

tools: $(STATICCHECK) $(TOOLBIN)/versitygw $(TOOLBIN)/promtool ## build pinned tools into .cache/bin, PostgreSQL 15 if missing
	@.ci/ensure-postgres

$(STATICCHECK): .ci/install-go-tool Makefile
	@.ci/install-go-tool $@ honnef.co/go/tools/cmd/staticcheck $(STATICCHECK_VERSION)

$(TOOLBIN)/versitygw: .ci/install-go-tool Makefile
	@.ci/install-go-tool $@ github.com/versity/versitygw/cmd/versitygw $(VERSITYGW_VERSION)

# promtool checks and unit-tests systemd/monitoring/alerts.yml (systemd tests).
$(TOOLBIN)/promtool: .ci/install-go-tool Makefile
	@.ci/install-go-tool $@ github.com/prometheus/prometheus/cmd/promtool $(PROMTOOL_VERSION)

clean: ## remove bin/ and .cache/
	rm -rf bin .cache
