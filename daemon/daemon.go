package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/pipeline"
)

// runOptions is what `run` is started with; tests of the real binary set
// them through the command line and environment.
type runOptions struct {
	ConfigPath string
	Config     *conf.Config // loaded and validated
	Stderr     io.Writer    // logs
	Getenv     func(string) string
	Signals    <-chan os.Signal // SIGTERM/SIGINT stop, SIGHUP reloads
	Now        func() time.Time
}

// daemon is one `materializer run`: its components and their wiring.
type daemon struct {
	configPath string
	cfg        *conf.Config
	log        zerolog.Logger
	sd         *sdNotifier
	auth       *adminAuth
	pipe       *pipeline.Pipeline
	admin      *adminServer
	readySent  atomic.Bool
	stopping   atomic.Bool
}

// runDaemon starts the daemon and serves until a stop signal, then drains.
func runDaemon(opts runOptions) error {
	d, err := startDaemon(opts)
	if err != nil {
		return err
	}
	err = d.serve(opts.Signals)
	if cerr := d.pipe.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil {
		d.log.Info().Msg("stopped")
	}
	return err
}

// startDaemon sets up, in order: logger, pipeline (it takes the data dir's
// lock), admin auth, metrics, admin listener. Nothing runs yet; on error
// the lock is released.
func startDaemon(opts runOptions) (*daemon, error) {
	cfg := opts.Config
	setMemoryLimits(cfg, opts.Getenv)
	setLogLevel(cfg.Daemon.LogLevel)
	root := newLogger(cfg.Daemon.LogFormat, opts.Stderr)
	d := &daemon{configPath: opts.ConfigPath, cfg: cfg, sd: sdNotifierFromEnv(opts.Getenv),
		log: root.With().Str("component", "daemon").Logger()}
	d.log.Info().Str("version", version).Int("pid", os.Getpid()).Str("config", opts.ConfigPath).
		Str("data_dir", cfg.Daemon.DataDir).Int("event_types", len(cfg.EventTypes)).Msg("starting")
	d.notify("STATUS=starting")

	if err := d.build(opts, root); err != nil {
		if d.pipe != nil {
			d.pipe.Close()
		}
		return nil, err
	}
	d.logAdmin()
	return d, nil
}

// build creates the components: pipeline, admin auth, metrics, admin server.
func (d *daemon) build(opts runOptions, root zerolog.Logger) error {
	reg := newRegistry()
	var err error
	d.pipe, err = pipeline.New(pipeline.Options{Config: d.cfg, Logger: root, Registry: reg, Now: opts.Now, GovernMemory: opts.Getenv("GOMEMLIMIT") == ""})
	if err != nil {
		return err
	}
	if d.auth, err = newAdminAuth(d.cfg.Daemon.AdminTokenFile); err != nil {
		return err
	}
	d.admin, err = newAdminServer(adminConfig{
		Listen: d.cfg.Daemon.AdminListen, Auth: d.auth, Registry: reg, Log: root, Now: opts.Now, Ready: d.pipe.Ready,
		Drained: d.pipe.Drained,
	})
	if err != nil {
		return err
	}
	d.admin.servePipeline(d.pipe)
	return nil
}

func (d *daemon) logAdmin() {
	addr := d.admin.Addr()
	d.log.Info().Str("addr", addr).Bool("token", d.cfg.Daemon.AdminTokenFile != "").Msg("admin server listening")
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); d.cfg.Daemon.AdminTokenFile == "" && (ip == nil || !ip.IsLoopback()) {
		d.log.Warn().Str("addr", addr).Msg("admin API reachable from the network without admin_token_file: POST endpoints accept loopback clients only")
	}
}

// setMemoryLimits gives Go's runtime its share of daemon.memory_limit as
// its soft limit until the pipeline governs it (GOMEMLIMIT and GOGC in the
// environment still win).
func setMemoryLimits(cfg *conf.Config, getenv func(string) string) {
	if getenv("GOGC") == "" {
		// Half Go's default heap headroom: measured in the end-to-end
		// benchmark, peak RSS 297 → 262 MiB at the same throughput.
		debug.SetGCPercent(50)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.Daemon.MemoryBudget().GoHeap)
	}
}

// notify sends systemd notify states, logging (not failing) on error.
func (d *daemon) notify(states ...string) {
	if err := d.sd.Send(states...); err != nil {
		d.log.Warn().Err(err).Strs("states", states).Msg("sd_notify failed")
	}
}

// task is a goroutine whose end and error can be awaited more than once.
type task struct {
	done chan struct{}
	err  error
}

func goTask(f func() error) *task {
	t := &task{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = f()
	}()
	return t
}

// serve runs the pipeline, the admin server and the supervisor until a stop
// signal or a component failure, then drains in two phases: the pipeline
// gets daemon.drain_timeout to stop, then the admin server stops. It
// returns after every goroutine exited, except when the drain overran its
// budget: then it returns at once and the process exits regardless.
func (d *daemon) serve(signals <-chan os.Signal) error {
	pctx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	actx, stopAdmin := context.WithCancel(context.Background())
	defer stopAdmin()
	pipe := goTask(func() error { return d.pipe.Run(pctx) })
	admin := goTask(func() error { return d.admin.Run(actx) })
	super := goTask(func() error { d.supervise(actx); return nil })

	cause := d.waitForStop(signals, pipe, admin)
	start := time.Now()
	d.stopping.Store(true)
	d.admin.SetDraining()
	d.notify("STOPPING=1", "STATUS=draining")
	stopPipe()
	if err := d.drain(signals, pipe); err != nil {
		stopAdmin()
		<-admin.done
		return err
	}
	if cause == nil && pipe.err != nil {
		cause = fmt.Errorf("pipeline: %w", pipe.err)
	}
	d.log.Info().Str("took", time.Since(start).Round(time.Millisecond).String()).Msg("pipeline drained")
	stopAdmin()
	<-admin.done
	<-super.done
	return cause
}

// waitForStop handles SIGHUP until a stop signal (nil) or until the
// pipeline or admin server ends on its own (the error).
func (d *daemon) waitForStop(signals <-chan os.Signal, pipe, admin *task) error {
	for {
		select {
		case sig := <-signals:
			if isHangup(sig) {
				d.reload()
				continue
			}
			d.log.Info().Str("signal", sig.String()).Str("budget", d.cfg.Daemon.DrainTimeout.String()).Msg("stopping")
			return nil
		case <-pipe.done:
			d.log.Error().Err(safeErr(pipe.err)).Msg("pipeline stopped on its own")
			return stoppedError("pipeline", pipe.err)
		case <-admin.done:
			d.log.Error().Err(admin.err).Msg("admin server stopped on its own")
			return stoppedError("admin server", admin.err)
		}
	}
}

func stoppedError(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%s stopped unexpectedly", what)
	}
	return err
}

// drain waits for the pipeline to stop within the budget; a second stop
// signal gives up waiting.
func (d *daemon) drain(signals <-chan os.Signal, pipe *task) error {
	budget := d.cfg.Daemon.DrainTimeout.Duration()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	for {
		select {
		case <-pipe.done:
			return nil
		case <-timer.C:
			return fmt.Errorf("drain did not finish within daemon.drain_timeout (%s)", budget)
		case sig := <-signals:
			if !isHangup(sig) {
				return fmt.Errorf("second signal (%s) during drain: not waiting for the pipeline", sig)
			}
		}
	}
}

// supervise reports readiness to systemd (READY=1 the first time, STATUS=
// on every change) and feeds the watchdog while the pipeline is healthy.
func (d *daemon) supervise(ctx context.Context) {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	var watchdog <-chan time.Time
	if iv := d.sd.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
	}
	ready := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if r := d.pipe.Ready(); r != ready && !d.stopping.Load() {
				ready = r
				d.readyChanged(r)
			}
		case <-watchdog:
			if err := d.health(); err != nil {
				d.log.Error().Err(err).Msg("unhealthy: not feeding the systemd watchdog")
				continue
			}
			d.notify("WATCHDOG=1")
		}
	}
}

func (d *daemon) readyChanged(ready bool) {
	if !ready && d.pipe.Drained() {
		d.log.Info().Msg("drained: not ready until undrained or restarted")
		d.notify("STATUS=drained: idle until `materializer drain -undo` or a restart")
		return
	}
	if !ready {
		d.log.Warn().Msg("pipeline not ready")
		d.notify("STATUS=not ready")
		return
	}
	d.log.Info().Msg("ready")
	status := fmt.Sprintf("STATUS=ready: %s, admin on %s", plural(len(d.pipe.Config().EventTypes), "event type"), d.admin.Addr())
	if d.readySent.CompareAndSwap(false, true) {
		d.notify("READY=1", status)
		return
	}
	d.notify(status)
}

// health asks the pipeline whether it makes progress.
func (d *daemon) health() error { return d.pipe.Healthy() }
