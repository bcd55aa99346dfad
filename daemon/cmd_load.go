package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
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
	signals, unsubscribe := serviceSignals()
	defer unsubscribe()

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
	lp := &loaderProc{cfg: cfg, configPath: *path}
	lp.service = service{name: "loader", log: root.With().Str("component", "daemon").Logger(), sd: sdNotifierFromEnv(os.Getenv),
		drainTimeout: cfg.Daemon.DrainTimeout.Duration(), stopStatus: "stopping", onHangup: lp.reload, onReady: lp.readyStatus}
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
	service
	cfg        *conf.Config
	configPath string
	auth       *adminAuth
	loader     *load.Loader
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
	p.runMain, p.isReady, p.health = p.loader.Run, p.loader.Ready, p.loader.Healthy
	if err := p.serve(signals); err != nil {
		return err
	}
	p.log.Info().Msg("stopped")
	return nil
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

// readyStatus logs a change of the loader's readiness and returns its
// STATUS= text.
func (p *loaderProc) readyStatus(ready bool) string {
	if !ready {
		p.log.Warn().Msg("loader not ready")
		return "not ready (see /v1/status last_error)"
	}
	return fmt.Sprintf("loading into schema %s, admin on %s", p.cfg.Load.Schema, p.admin.Addr())
}
