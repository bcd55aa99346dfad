package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"materializer/conf"
)

func isHangup(sig os.Signal) bool { return sig == syscall.SIGHUP }

// reloader is a pipeline that can take a reload: apply the plan's live
// changes (roll limits, staged-bytes limit, notice subject, new event types).
type reloader interface {
	Reload(ctx context.Context, cur *conf.Config, plan reloadPlan) error
}

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
	plan := planReload(d.cfg, cfg)
	if len(plan.Refused) > 0 {
		d.log.Error().Strs("refused", plan.Refused).
			Msg("reload refused: these changes would change the meaning of the stored state; keeping the running configuration (restore a checkpoint taken with the new config, or use a new data dir and consumer group)")
		return
	}
	if r, ok := d.pipe.(reloader); ok && (len(plan.Added) > 0 || hasStorageOrNotify(plan.Live)) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.Reload(ctx, cfg, plan)
		cancel()
		if err != nil {
			d.log.Error().Err(err).Msg("reload failed while applying: keeping the running configuration")
			return
		}
	}
	d.applyLive(cfg, plan)
	d.log.Info().Strs("applied", plan.Live).Str("log_level", d.cfg.Daemon.LogLevel).Msg("configuration reloaded")
	if len(plan.Restart) > 0 {
		d.log.Warn().Strs("keys", plan.Restart).Msg("reload: these changes need a restart and are not applied yet")
	}
}

func hasStorageOrNotify(keys []string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, "storage.") || strings.HasPrefix(k, "notify.") {
			return true
		}
	}
	return false
}

// applyLive moves the running config to the new one's live values, so the
// next reload compares against what really runs.
func (d *daemon) applyLive(cfg *conf.Config, plan reloadPlan) {
	run := *d.cfg
	run.Daemon.LogLevel = cfg.Daemon.LogLevel
	run.Daemon.AdminTokenFile = cfg.Daemon.AdminTokenFile
	run.Storage.RollMaxBytes, run.Storage.RollMaxRows, run.Storage.RollMaxAge = cfg.Storage.RollMaxBytes, cfg.Storage.RollMaxRows, cfg.Storage.RollMaxAge
	run.Storage.MaxStagedBytes = cfg.Storage.MaxStagedBytes
	run.Notify.SubjectPrefix = cfg.Notify.SubjectPrefix
	run.EventTypes = append(append([]conf.EventType{}, d.cfg.EventTypes...), plan.Added...)
	d.cfg = &run
	setLogLevel(run.Daemon.LogLevel)
	d.auth.tokenFile = run.Daemon.AdminTokenFile
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
