package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"materializer/conf"
	"materializer/pipeline/nakadi/nakaditest"
)

// demo is one `materializer demo`: the Nakadi emulator with a generator of
// article.updated events, an in-process NATS server and the real daemon
// (runDaemon, as `run` starts it) with file:// storage, all under one
// directory.
type demo struct {
	io                   stdio
	self                 string // the binary as the user invoked it
	source, dir, cfgPath string // demo config, demo directory (absolute), effective config
	admin                string // -admin
	rate, articles       int
	seed                 uint64
	duration, every      time.Duration

	cfg     *conf.Config
	nk      *nakaditest.Server
	nats    *server.Server
	natsURL string
	pub     *demoPublisher
	base    string // admin URL, known once the daemon started
}

// cmdDemo is `materializer demo`.
func cmdDemo(args []string, io stdio) int {
	d := &demo{io: io, self: os.Args[0]}
	fs := newFlags("demo", io)
	fs.StringVar(&d.source, "config", "conf/demo.toml", "demo config `file` (nakadi.url, notify.nats_url, data_dir and the storage and checkpoint urls are set by the demo)")
	fs.StringVar(&d.dir, "dir", "var", "`directory` for state, delivered files, checkpoints and the NATS store; cleared at start")
	fs.StringVar(&d.admin, "admin", "", "admin API `address` (default: the config's daemon.admin_listen)")
	fs.IntVar(&d.rate, "rate", 200, "events per `second` the generator publishes")
	fs.IntVar(&d.articles, "articles", 300, "`number` of distinct articles")
	fs.Uint64Var(&d.seed, "seed", 1, "generator `seed`")
	fs.DurationVar(&d.duration, "duration", 0, "stop cleanly after this `long` (default: run until Ctrl-C)")
	fs.DurationVar(&d.every, "every", 10*time.Second, "print a summary line this `often`")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	if d.rate < 1 || d.articles < 1 || d.duration < 0 || d.every <= 0 {
		fmt.Fprintln(io.err, "materializer demo: -rate and -articles must be >= 1, -duration >= 0, -every > 0")
		return exitUsage
	}
	// Subscribe before anything starts so that an early Ctrl-C is not lost.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)
	return d.run(signals)
}

// run sets up the embedded services and runs the daemon until it stops.
func (d *demo) run(signals <-chan os.Signal) int {
	if code := d.setUp(); code != exitOK {
		return code
	}
	defer d.tearDown()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	toDaemon := make(chan os.Signal, 8)
	var pubErr error
	err := runDaemon(runOptions{
		ConfigPath: d.cfgPath, Config: d.cfg, Stderr: d.io.err, Getenv: os.Getenv, Signals: toDaemon, Now: time.Now,
		Started: func(addr string) {
			d.base = "http://" + addr
			wg.Go(func() { d.supervise(ctx, signals, toDaemon, &pubErr) })
		},
	})
	cancel()
	wg.Wait()
	if err == nil {
		err = pubErr
	}
	if err != nil {
		fmt.Fprintf(d.io.err, "materializer demo: %v\n", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintln(d.io.err, "materializer demo: pass -admin 127.0.0.1:0 to let the system pick a free port for the admin API")
		}
		return exitFailure
	}
	return exitOK
}

// setUp loads the demo config, prepares the directory and starts the
// emulator and NATS; it returns the exit code of a failure.
func (d *demo) setUp() int {
	base, ok := loadConfig(d.source, conf.ForDemo, d.io.err)
	if !ok {
		if _, err := os.Stat(d.source); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(d.io.err, "materializer demo: run it from the repository root, or pass -config with the path of conf/demo.toml")
		}
		return exitUsage
	}
	if _, err := findEventType(base, demoEventType); err != nil {
		fmt.Fprintf(d.io.err, "materializer demo: %s: the demo publishes %s events: %v\n", d.source, demoEventType, err)
		return exitUsage
	}
	text, err := os.ReadFile(d.source)
	if err == nil {
		d.dir, err = filepath.Abs(d.dir)
	}
	if err == nil {
		err = prepareDemoDir(d.dir)
	}
	if err != nil {
		fmt.Fprintf(d.io.err, "materializer demo: %v\n", err)
		return exitUsage
	}
	if err := d.startServices(base, string(text)); err != nil {
		d.tearDown()
		fmt.Fprintf(d.io.err, "materializer demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// startServices starts the emulator and NATS, then writes and loads the
// config the daemon runs with.
func (d *demo) startServices(base *conf.Config, text string) error {
	var err error
	if d.nk, err = startEmulator(base); err != nil {
		return err
	}
	if d.nats, d.natsURL, err = startNATS(filepath.Join(d.dir, "nats")); err != nil {
		return err
	}
	d.pub = newDemoPublisher(d.nk, d.seed, d.articles, d.rate)
	d.cfgPath = filepath.Join(d.dir, "demo.toml")
	eff := demoConfig(text, d.source, demoSettings{Dir: d.dir, NakadiURL: d.nk.URL(), NATSURL: d.natsURL, AdminListen: d.admin})
	if err := os.WriteFile(d.cfgPath, []byte(eff), 0o644); err != nil {
		return err
	}
	var problems strings.Builder
	cfg, ok := loadConfig(d.cfgPath, conf.ForRun, &problems)
	if !ok {
		return fmt.Errorf("the demo's config does not validate:\n%s", problems.String())
	}
	d.cfg = cfg
	return nil
}

func (d *demo) tearDown() {
	if d.nats != nil {
		d.nats.Shutdown()
		d.nats.WaitForShutdown()
	}
	if d.nk != nil {
		d.nk.Close()
	}
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
