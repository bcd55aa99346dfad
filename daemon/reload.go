package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"materializer/conf"
)

func isHangup(sig os.Signal) bool { return sig == syscall.SIGHUP }

// reloadable lists the keys SIGHUP applies; every other change is logged as
// needing a restart (nats-server reload.go style).
var reloadable = map[string]bool{"daemon.log_level": true, "daemon.admin_token_file": true}

// reload re-reads and validates the config file. A bad file changes
// nothing. Of a good file only the reloadable keys are applied; the admin
// token file is re-read in any case (token rotation).
func (d *daemon) reload() {
	d.log.Info().Str("config", d.configPath).Msg("SIGHUP: reloading configuration")
	if d.readySent.Load() {
		d.notify("RELOADING=1", monotonicUsec(), "STATUS=reloading configuration")
		defer d.notify("READY=1", "STATUS=ready (configuration reloaded)")
	}
	cfg, err := conf.Load(d.configPath, conf.ForRun)
	if err != nil {
		d.log.Error().Strs("problems", problemLines(err)).Msg("reload failed: keeping the running configuration")
		return
	}
	var applied, needRestart []string
	for _, key := range conf.Diff(d.cfg, cfg) {
		if reloadable[key] {
			applied = append(applied, key)
		} else {
			needRestart = append(needRestart, key)
		}
	}
	d.cfg.Daemon.LogLevel = cfg.Daemon.LogLevel
	setLogLevel(d.cfg.Daemon.LogLevel)
	if cfg.Daemon.AdminTokenFile != d.cfg.Daemon.AdminTokenFile {
		d.auth.tokenFile = cfg.Daemon.AdminTokenFile
		d.cfg.Daemon.AdminTokenFile = cfg.Daemon.AdminTokenFile
	}
	if err := d.auth.Reload(); err != nil {
		d.log.Error().Err(err).Msg("reload: keeping the previous admin token")
	}
	d.log.Info().Strs("applied", applied).Str("log_level", d.cfg.Daemon.LogLevel).Msg("configuration reloaded")
	if len(needRestart) > 0 {
		d.log.Warn().Strs("keys", needRestart).Msg("reload: these changes need a restart and are not applied yet")
	}
}

// problemLines renders a Load error as one string per problem.
func problemLines(err error) []string {
	var ps conf.Problems
	if !errors.As(err, &ps) {
		return []string{err.Error()}
	}
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return lines
}

// monotonicUsec is the MONOTONIC_USEC= state systemd wants with RELOADING=1.
func monotonicUsec() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000)
}
