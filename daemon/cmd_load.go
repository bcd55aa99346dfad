package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/pipeline"
	"materializer/pipeline/blobstore"
	"materializer/pipeline/load"
)

// cmdLoad is `materializer load` (docs/loader.md): the DWH loader, or with
// -replay one parked notice loaded now. A bad config, an unreadable DSN
// file or tables that differ from the config exit 2; a failure after the
// start exits 1; a clean stop exits 0.
func cmdLoad(args []string, io stdio) int {
	fs := newFlags("load", io)
	path := fs.String("config", defaultConfigPath, "config `file`")
	replay := fs.String("replay", "", "load the parked notice `ID` (from materializer_failed_files) now, then exit")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)

	cfg, ok := loadConfig(*path, conf.ForLoad, io.err)
	if !ok {
		return exitUsage
	}
	setLogLevel(cfg.Daemon.LogLevel)
	root := newLogger(cfg.Daemon.LogFormat, io.err)
	opts, err := loaderOptions(cfg, root)
	if err != nil {
		fmt.Fprintf(io.err, "materializer load: %v\n", err)
		return exitUsage
	}
	if *replay != "" {
		return replayNotice(opts, *replay, io)
	}
	lp := &loaderProc{cfg: cfg, configPath: *path, log: root.With().Str("component", "daemon").Logger(), sd: sdNotifierFromEnv(os.Getenv)}
	err = lp.run(opts, root, signals)
	switch {
	case errors.Is(err, load.ErrTablesDiffer):
		fmt.Fprintf(io.err, "materializer load: %v\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(io.err, "materializer load: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// loaderOptions reads the DSN file and opens the store.
func loaderOptions(cfg *conf.Config, log zerolog.Logger) (load.Options, error) {
	dsn, err := readDSN(cfg.Load.DSNFile)
	if err != nil {
		return load.Options{}, err
	}
	store, err := blobstore.Open(context.Background(), cfg.Storage.URL, pipeline.StoreOptions(cfg.Storage, log))
	if err != nil {
		return load.Options{}, err
	}
	o := load.Options{Config: cfg, DSN: dsn, Store: store, Logger: log, Now: time.Now}
	if d, err := time.ParseDuration(os.Getenv("MATERIALIZER_LOAD_ACK_WAIT")); err == nil && d > 0 {
		o.AckWait = d // how soon a crashed loader's notices come again (docs/loader.md)
	}
	return o, nil
}

// readDSN reads load.dsn_file; its content is never printed.
func readDSN(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("load.dsn_file: %w", pathError(err))
	}
	dsn := strings.TrimSpace(string(data))
	if dsn == "" {
		return "", fmt.Errorf("load.dsn_file: %s is empty", file)
	}
	return dsn, nil
}

func replayNotice(opts load.Options, id string, io stdio) int {
	l, err := load.New(opts)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var res load.Result
		if res, err = l.Replay(ctx, id); err == nil {
			fmt.Fprintf(io.out, "loaded %s: %d rows\n", id, res.Rows)
			return exitOK
		}
	}
	fmt.Fprintf(io.err, "materializer load: replay %s: %v\n", id, err)
	if errors.Is(err, load.ErrNotParked) {
		return exitUsage
	}
	return exitFailure
}

// loaderProc is one `materializer load`: the loader, its admin API, systemd
// notification and signals.
type loaderProc struct {
	cfg        *conf.Config
	configPath string
	log        zerolog.Logger
	sd         *sdNotifier
	auth       *adminAuth
	loader     *load.Loader
	admin      *adminServer
}

// run serves until a stop signal, then stops the loader (within
// daemon.drain_timeout: a transaction in flight commits or rolls back) and
// the admin server.
func (p *loaderProc) run(opts load.Options, root zerolog.Logger, signals <-chan os.Signal) error {
	p.log.Info().Str("version", version).Int("pid", os.Getpid()).Str("config", p.configPath).Msg("starting the loader")
	p.notify("STATUS=starting")
	reg := newRegistry()
	opts.Registerer = reg
	var err error
	if p.loader, err = load.New(opts); err != nil {
		return err
	}
	if p.auth, err = newAdminAuth(p.cfg.Daemon.AdminTokenFile); err != nil {
		return err
	}
	p.admin, err = newAdminServer(adminConfig{Listen: p.cfg.Load.AdminListen, Auth: p.auth, Registry: reg,
		Log: root, Now: time.Now, Ready: p.loader.Ready})
	if err != nil {
		return err
	}
	p.admin.serveLoader(p.loader)
	p.log.Info().Str("addr", p.admin.Addr()).Msg("admin server listening")
	lctx, stopLoader := context.WithCancel(context.Background())
	defer stopLoader()
	actx, stopAdmin := context.WithCancel(context.Background())
	defer stopAdmin()
	loader := goTask(func() error { return p.loader.Run(lctx) })
	admin := goTask(func() error { return p.admin.Run(actx) })
	super := goTask(func() error { p.supervise(actx); return nil })
	cause := p.waitForStop(signals, loader, admin)
	p.admin.SetDraining()
	p.notify("STOPPING=1", "STATUS=stopping")
	stopLoader()
	select {
	case <-loader.done:
	case <-time.After(p.cfg.Daemon.DrainTimeout.Duration()):
		cause = errors.Join(cause, fmt.Errorf("the loader did not stop within daemon.drain_timeout (%s)", p.cfg.Daemon.DrainTimeout))
	}
	stopAdmin()
	<-admin.done
	<-super.done
	if cause == nil && loader.err != nil {
		cause = loader.err
	}
	if cause == nil {
		p.log.Info().Msg("stopped")
	}
	return cause
}

// waitForStop handles SIGHUP until a stop signal (nil) or until the loader
// or the admin server ends on its own (the error).
func (p *loaderProc) waitForStop(signals <-chan os.Signal, loader, admin *task) error {
	for {
		select {
		case sig := <-signals:
			if isHangup(sig) {
				p.reload()
				continue
			}
			p.log.Info().Str("signal", sig.String()).Msg("stopping")
			return nil
		case <-loader.done:
			p.log.Error().Err(loader.err).Msg("the loader stopped on its own")
			return stoppedError("loader", loader.err)
		case <-admin.done:
			return stoppedError("admin server", admin.err)
		}
	}
}

// reload (SIGHUP) re-reads load.dsn_file and the admin token file; other
// keys need a restart.
func (p *loaderProc) reload() {
	p.log.Info().Msg("SIGHUP: re-reading load.dsn_file and daemon.admin_token_file")
	if err := p.auth.Reload(); err != nil {
		p.log.Error().Err(err).Msg("reload: keeping the previous admin token")
	}
	dsn, err := readDSN(p.cfg.Load.DSNFile)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = p.loader.SetDSN(ctx, dsn)
		cancel()
	}
	if err != nil {
		p.log.Error().Err(err).Msg("reload: keeping the previous PostgreSQL connection")
		return
	}
	p.log.Info().Msg("reloaded: new transactions use the connection string of load.dsn_file")
}

// supervise sends READY=1 once the loader is consuming, STATUS= on every
// change, and feeds the watchdog while the loader makes progress.
func (p *loaderProc) supervise(ctx context.Context) {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	var watchdog <-chan time.Time
	if iv := p.sd.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
	}
	ready, sent := false, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if r := p.loader.Ready(); r != ready {
				ready = r
				p.readyChanged(r, &sent)
			}
		case <-watchdog:
			if err := p.loader.Healthy(); err != nil {
				p.log.Error().Err(err).Msg("unhealthy: not feeding the systemd watchdog")
				continue
			}
			p.notify("WATCHDOG=1")
		}
	}
}

func (p *loaderProc) readyChanged(ready bool, sent *bool) {
	if !ready {
		p.log.Warn().Msg("loader not ready")
		p.notify("STATUS=not ready (see /v1/status last_error)")
		return
	}
	p.log.Info().Msg("ready")
	status := fmt.Sprintf("STATUS=loading into schema %s, admin on %s", p.cfg.Load.Schema, p.admin.Addr())
	if !*sent {
		*sent = true
		p.notify("READY=1", status)
		return
	}
	p.notify(status)
}

func (p *loaderProc) notify(states ...string) {
	if err := p.sd.Send(states...); err != nil {
		p.log.Warn().Err(err).Strs("states", states).Msg("sd_notify failed")
	}
}
