package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/internal/demo"
	"materializer/pipeline"
)

// cmdDemo is `materializer demo` (package demo): the pipeline with an
// embedded Nakadi emulator, generator and NATS server, served here as
// `run` serves it.
func cmdDemo(args []string, io stdio) int {
	o := demo.Options{Self: os.Args[0], Out: io.out, Err: io.err}
	fs := newFlags("demo", io)
	fs.StringVar(&o.Config, "config", "conf/demo.toml", "demo config `file` (nakadi.url, notify.nats_url, data_dir and the storage and checkpoint urls are set by the demo)")
	fs.StringVar(&o.Dir, "dir", "var", "`directory` for state, delivered files, checkpoints and the NATS store; cleared at start")
	fs.StringVar(&o.Admin, "admin", "", "admin API `address` (default: the config's daemon.admin_listen)")
	fs.IntVar(&o.Rate, "rate", 200, "events per `second` the generator publishes")
	fs.IntVar(&o.Articles, "articles", 300, "`number` of distinct articles")
	fs.Uint64Var(&o.Seed, "seed", 1, "generator `seed`")
	fs.DurationVar(&o.Duration, "duration", 0, "stop cleanly after this `long` (default: run until Ctrl-C)")
	fs.DurationVar(&o.Every, "every", 10*time.Second, "print a summary line this `often`")
	fs.BoolVar(&o.Load, "load", false, "also run `materializer load` into a throwaway PostgreSQL cluster (needs PostgreSQL installed)")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	signals, unsubscribe := serviceSignals()
	defer unsubscribe()
	o.Signals = signals
	o.Host = &demoHost{stderr: io.err, reg: newRegistry()}
	err := demo.Run(o)
	switch {
	case errors.As(err, new(conf.Problems)):
		printLoadError(io.err, o.Config, err)
		return exitUsage
	case errors.Is(err, demo.ErrUsage):
		fmt.Fprintf(io.err, "materializer %v\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(io.err, "materializer demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// demoHost serves the demo's pipeline as `run` serves its own.
type demoHost struct {
	stderr io.Writer
	reg    *prometheus.Registry
}

func (h *demoHost) Logger(cfg *conf.Config) zerolog.Logger {
	setLogLevel(cfg.Daemon.LogLevel)
	setMemoryLimits(cfg, os.Getenv)
	return newLogger(cfg.Daemon.LogFormat, h.stderr)
}

func (h *demoHost) Registry() *prometheus.Registry { return h.reg }

func (h *demoHost) Serve(ctx context.Context, cfg *conf.Config, p *pipeline.Pipeline) (string, error) {
	auth, err := newAdminAuth(cfg.Daemon.AdminTokenFile)
	if err != nil {
		return "", err
	}
	a, err := newAdminServer(adminConfig{Listen: cfg.Daemon.AdminListen, Auth: auth, Registry: h.reg,
		Log: h.Logger(cfg), Now: time.Now, Ready: p.Ready})
	if err != nil {
		return "", err
	}
	a.servePipeline(p)
	go func() { _ = a.Run(ctx) }()
	return a.Addr(), nil
}
