// Package demo is `materializer demo`: the Nakadi emulator with a generator
// of article.updated events, an in-process NATS server and the real
// pipeline (pipeline.New, then Run, as `materializer run` starts it) with
// file:// storage, all under one directory and in one process.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/pipeline"
	"materializer/pipeline/nakadi/emulator"
)

// Options are the demo's flags and where it talks to.
type Options struct {
	Config   string // demo config file (conf/demo.toml)
	Dir      string // state, delivered files, checkpoints, NATS store; cleared at start
	Admin    string // admin API address ("" = the config's daemon.admin_listen)
	Rate     int    // events per second
	Articles int
	Seed     uint64
	Duration time.Duration // stop cleanly after this long (0 = at Ctrl-C)
	Every    time.Duration // a summary line this often
	Load     bool          // also run the loader into a throwaway PostgreSQL
	Self     string        // the binary as the user invoked it, for the banner
	Out, Err io.Writer
	Signals  <-chan os.Signal // SIGINT/SIGTERM stop, SIGHUP reloads
	Host     Host
}

// Host serves the pipeline as `materializer run` does: its logger, its
// metrics registry and its admin API (package main implements it).
type Host interface {
	Logger(cfg *conf.Config) zerolog.Logger
	Registry() *prometheus.Registry
	// Serve serves the admin API of p on cfg.Daemon.AdminListen until ctx
	// ends; it returns once listening, with the address.
	Serve(ctx context.Context, cfg *conf.Config, p *pipeline.Pipeline) (addr string, err error)
}

// ErrUsage marks a failure caused by the flags or the demo config (exit 2).
var ErrUsage = errors.New("demo: bad usage")

// EventType is what the demo's generator publishes.
const EventType = "article.updated"

// demo is one run of the demo.
type demo struct {
	Options
	cfgPath string // the effective config, written into Dir
	cfg     *conf.Config
	nk      *emulator.Server
	nats    *server.Server
	natsURL string
	pub     *publisher
	pipe    *pipeline.Pipeline
	base    string // admin URL
	loader  *demoLoader
}

// Run runs the demo until it is stopped (Ctrl-C, SIGTERM, -duration) and
// has flushed; a failure caused by the options wraps ErrUsage.
func Run(o Options) error {
	if o.Rate < 1 || o.Articles < 1 || o.Duration < 0 || o.Every <= 0 {
		return fmt.Errorf("%w: -rate and -articles must be >= 1, -duration >= 0, -every > 0", ErrUsage)
	}
	d := &demo{Options: o}
	if err := d.setUp(); err != nil {
		return err
	}
	defer d.tearDown()
	return d.run()
}

// setUp loads the demo config, prepares the directory and starts the
// emulator and NATS.
func (d *demo) setUp() error {
	base, err := conf.Load(d.Config, conf.ForDemo)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w\nrun it from the repository root, or pass -config with the path of conf/demo.toml", err)
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if !hasEventType(base, EventType) {
		return fmt.Errorf("%w: %s: the demo publishes %s events, and the config has no such event type", ErrUsage, d.Config, EventType)
	}
	text, err := os.ReadFile(d.Config)
	if err == nil {
		d.Dir, err = filepath.Abs(d.Dir)
	}
	if err == nil {
		err = prepareDir(d.Dir)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err := d.startServices(base, string(text)); err != nil {
		d.tearDown()
		return err
	}
	return nil
}

func hasEventType(cfg *conf.Config, name string) bool {
	for _, et := range cfg.EventTypes {
		if et.Name == name {
			return true
		}
	}
	return false
}

// startServices starts the emulator and NATS, then writes and loads the
// config the pipeline runs with.
func (d *demo) startServices(base *conf.Config, text string) error {
	var err error
	if d.nk, err = startEmulator(base); err != nil {
		return err
	}
	if d.nats, d.natsURL, err = startNATS(filepath.Join(d.Dir, "nats")); err != nil {
		return err
	}
	d.pub = newPublisher(d.nk, d.Seed, d.Articles, d.Rate)
	d.cfgPath = filepath.Join(d.Dir, "demo.toml")
	set := settings{Dir: d.Dir, NakadiURL: d.nk.URL(), NATSURL: d.natsURL, AdminListen: d.Admin}
	if d.Load {
		if set.DSNFile, err = d.startPostgresFor(); err != nil {
			return err
		}
	}
	eff := effectiveConfig(text, d.Config, set)
	if err := os.WriteFile(d.cfgPath, []byte(eff), 0o644); err != nil {
		return err
	}
	cfg, err := conf.Load(d.cfgPath, conf.ForRun)
	if err != nil {
		return fmt.Errorf("the demo's config does not validate: %w", err)
	}
	d.cfg = cfg
	return nil
}

func (d *demo) tearDown() {
	d.stopLoader()
	if d.nats != nil {
		d.nats.Shutdown()
		d.nats.WaitForShutdown()
	}
	if d.nk != nil {
		d.nk.Close()
	}
}

// run starts the pipeline and its admin API, supervises the demo until it
// stops, then stops the pipeline.
func (d *demo) run() error {
	log := d.Host.Logger(d.cfg)
	p, err := pipeline.New(pipeline.Options{Config: d.cfg, Logger: log, Registry: d.Host.Registry(), Now: time.Now})
	if err != nil {
		return err
	}
	d.pipe = p
	defer p.Close()
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	defer stopAdmin()
	addr, err := d.Host.Serve(adminCtx, d.cfg, p)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w\npass -admin 127.0.0.1:0 to let the system pick a free port for the admin API", err)
		}
		return err
	}
	d.base = "http://" + addr
	if err := d.runLoader(log); err != nil {
		return err
	}
	pctx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	done := make(chan struct{})
	var perr error
	go func() { perr = p.Run(pctx); close(done) }()
	err = d.supervise(done, stopPipe)
	<-done
	if err == nil {
		err = perr
	}
	return err
}

// show prints a path relative to the working directory when it is below it.
func (d *demo) show(path string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return path
}
