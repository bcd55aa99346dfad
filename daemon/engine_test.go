package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/internal/natstest"
	"materializer/pipeline/nakadi/emulator"
)

// articleType is the article.updated event type of the pipeline tests and
// the benchmark: the two tables of DESIGN.md §6, sessions that close only
// by a flush; ordering and the price column's type vary.
func articleType(ordering, priceType string) string {
	return fmt.Sprintf(`[[event_types]]
name          = "article.updated"
partition_key = ["article_id"]
ordering_key  = "version"
ordering      = %q
session_gap   = "1h"
session_max   = "2h"
  [[event_types.tables]]
  name    = "article"
  columns = [
    { name = "article_id",  path = "article_id",           type = "int", required = true },
    { name = "brand",       path = "brand" },
    { name = "version",     path = "version",              type = "int" },
    { name = "price",       path = "price.amount",         type = %q },
    { name = "occurred_at", path = "metadata.occurred_at", type = "timestamp" },
  ]
  [[event_types.tables]]
  name    = "article_size"
  columns = [
    { name = "article_id", path = "article_id",   type = "int" },
    { name = "size",       path = "sizes[*].size" },
    { name = "qty",        path = "sizes[*].qty", type = "int" },
  ]
`, ordering, priceType)
}

// articleTypeTOML is articleType with numeric versions and decimal prices.
var articleTypeTOML = articleType("number", "decimal")

// pipelineConfig is a complete config for in-process pipeline tests.
func pipelineConfig(t *testing.T, dir, nakadiURL, natsURL string) *conf.Config {
	t.Helper()
	_, cfg := ckptConfig(t, ckptSetup{dir: dir, nakadiURL: nakadiURL, natsURL: natsURL})
	return cfg
}

// runEngine runs the pipeline in-process until the test's end.
func runEngine(t *testing.T, cfg *conf.Config) *engine {
	t.Helper()
	e, _ := startEngine(t, cfg, prometheus.NewRegistry())
	return e
}

// startEngine runs the pipeline in-process, with its metrics on reg, until
// stop (or the test's end); stop may be called more than once.
func startEngine(t *testing.T, cfg *conf.Config, reg *prometheus.Registry) (e *engine, stop func()) {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	e, err := newEngine(pipelineDeps{Config: cfg, Log: log, Registry: reg, Now: time.Now,
		Overrides: pipelineOverrides{FractionalSeconds: true, Tick: 20 * time.Millisecond, DeliveryBackoff: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("pipeline Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, 30*time.Second, "pipeline ready", e.Ready)
	return e, stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publish sends events to the emulator in batches, as producers would.
func publish(t *testing.T, nk *emulator.Server, events []article) {
	t.Helper()
	for i := 0; i < len(events); i += 100 {
		var batch [][]byte
		for _, a := range events[i:min(i+100, len(events))] {
			batch = append(batch, a.Raw)
		}
		if err := nk.Publish("article.updated", batch...); err != nil {
			t.Fatal(err)
		}
	}
}

func etStatus(t *testing.T, e *engine) eventTypeStatus {
	t.Helper()
	v, err := e.EventTypes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v.([]eventTypeStatus)[0]
}

// The whole pipeline in one process: emulator → consumer → engine → file
// storage → NATS, then a flush; the delivered files and notices must be
// exactly what DESIGN.md §2–§3 say.
func TestPipelineEndToEndInProcess(t *testing.T) {
	nk := newArticleEmulator(t, 4)
	ns := natstest.Start(t)
	dir := t.TempDir()
	cfg := pipelineConfig(t, dir, nk.URL(), ns.URL())
	e := runEngine(t, cfg)

	events := generate(7, 300, 6000)
	publish(t, nk, events)
	waitFor(t, 60*time.Second, "every event received", func() bool { return etStatus(t, e).Counters.Received == uint64(len(events)) })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	x := expect(events)
	c := etStatus(t, e).Counters
	if !c.Balanced() || c.Open != 0 || c.Main != uint64(len(x.newest)) || c.Rejected != uint64(x.rejected) ||
		c.Duplicate != uint64(x.duplicates) || c.Received != uint64(len(events)) {
		t.Errorf("counters %+v; want main=%d rejected=%d duplicate=%d", c, len(x.newest), x.rejected, x.duplicates)
	}
	files := readDelivered(t, filepath.Join(dir, "storage"))
	checkDelivered(t, files, x)
	checkNotices(t, ns.URL(), files)
	if left, _ := os.ReadDir(filepath.Join(dir, "data", "staging")); len(left) != 0 {
		t.Errorf("%d staging files left after a flush", len(left))
	}
}
