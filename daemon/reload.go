package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"materializer/conf"
	"materializer/pipeline"
)

func isHangup(sig os.Signal) bool { return sig == syscall.SIGHUP }

// reload re-reads and validates the config file. A bad file changes
// nothing; nor does a good one that would change the state's layout (a
// partition key, ordering or tables of a running event type, the data dir):
// those refusals are logged with key, old and new value, and the daemon
// keeps its running configuration. Otherwise the live keys are applied, new
// event types start, and keys that need a restart are named. The admin
// token file is re-read in any case (token rotation).
func (d *daemon) reload() {
	d.log.Info().Str("config", d.configPath).Msg("SIGHUP: reloading configuration")
	if d.readySent.Load() {
		d.notify("RELOADING=1", monotonicUsec(), "STATUS=reloading configuration")
		defer d.notify("READY=1", "STATUS=ready (configuration reloaded)")
	}
	defer func() {
		if err := d.auth.Reload(); err != nil {
			d.log.Error().Err(err).Msg("reload: keeping the previous admin token")
		}
	}()
	cfg, err := conf.Load(d.configPath, conf.ForRun)
	if err != nil {
		d.log.Error().Strs("problems", problemLines(err)).Msg("reload failed: keeping the running configuration")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	plan, err := d.pipe.Reload(ctx, cfg)
	cancel()
	switch {
	case errors.Is(err, pipeline.ErrReloadRefused):
		d.log.Error().Strs("refused", plan.Refused).
			Msg("reload refused: these changes would change the meaning of the stored state; keeping the running configuration (restore a checkpoint taken with the new config, or use a new data dir and consumer group)")
		return
	case err != nil:
		d.log.Error().Err(safeErr(err)).Msg("reload failed while applying: keeping the running configuration")
		return
	}
	run := d.pipe.Config()
	setLogLevel(run.Daemon.LogLevel)
	d.auth.tokenFile = run.Daemon.AdminTokenFile
	d.log.Info().Strs("applied", plan.Live).Str("log_level", run.Daemon.LogLevel).Msg("configuration reloaded")
	if len(plan.Restart) > 0 {
		d.log.Warn().Strs("keys", plan.Restart).Msg("reload: these changes need a restart and are not applied yet")
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
