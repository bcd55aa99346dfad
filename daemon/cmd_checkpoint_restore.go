package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"materializer/checkpoint"
	"materializer/conf"
	"materializer/internal/datadir"
	"materializer/pipeline"
	"materializer/pipeline/nakadi"
	"materializer/state"
)

// restoreFlags are the flags of `materializer checkpoint restore`.
type restoreFlags struct {
	id, from  string
	yes       bool
	resume    bool
	retention time.Duration
}

// checkpointRestore is `materializer checkpoint restore`: with the daemon
// stopped, it copies a checkpoint (local or remote, verified) beside the
// data dir, gives it a new writer id, shows the plan, asks, swaps it in for
// the data dir (the old one kept aside), and resets the Nakadi cursors to
// the checkpoint's so the replay starts right after them.
func checkpointRestore(args []string, stdio stdio) int {
	fs, path := subFlags("restore", "-id ID|latest [-from URL] [-yes] [-retention 48h] | -resume", stdio)
	var f restoreFlags
	fs.StringVar(&f.id, "id", "", "checkpoint `id`, or latest (the newest valid one, local or remote)")
	fs.StringVar(&f.from, "from", "", "remote checkpoints `URL` (s3:// or file://) instead of checkpoint.url")
	fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
	fs.BoolVar(&f.resume, "resume", false, "only reset the Nakadi cursors of a restore that could not (data dir already restored)")
	fs.DurationVar(&f.retention, "retention", 48*time.Hour, "Nakadi's retention time, for the warning about old checkpoints")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	if (f.id == "") == !f.resume {
		fmt.Fprintln(stdio.err, "materializer checkpoint restore: give -id ID|latest, or -resume")
		fs.Usage()
		return exitUsage
	}
	cfg, ok := loadConfig(*path, conf.ForRun, stdio.err)
	if !ok {
		return exitUsage
	}
	r := &restorer{cfg: cfg, f: f, io: stdio, now: time.Now}
	code, err := r.run()
	if err != nil {
		fmt.Fprintf(stdio.err, "materializer checkpoint restore: %v\n", err)
	}
	return code
}

// restorer is one run of `checkpoint restore`.
type restorer struct {
	cfg *conf.Config
	f   restoreFlags
	io  stdio
	now func() time.Time
}

func (r *restorer) run() (int, error) {
	dataDir := r.cfg.Daemon.DataDir
	lock, err := datadir.Existing(dataDir)
	if err != nil {
		return exitFailure, fmt.Errorf("%w: stop the daemon first", err)
	}
	defer lock.Release()
	ctx := context.Background()
	if r.f.resume {
		return r.resume(ctx)
	}
	switch p, err := checkpoint.ReadPending(dataDir); {
	case err != nil:
		return exitFailure, err
	case p != nil:
		return exitFailure, fmt.Errorf("%w: a restore of %s did not reset the Nakadi cursors yet: run with -resume",
			checkpoint.ErrRestorePending, pendingName(p))
	}
	configured, err := configuredEventTypes(r.cfg)
	if err != nil {
		return exitUsage, err
	}
	src, err := checkpointSource(r.cfg, r.f.from)
	if err != nil {
		return exitUsage, err
	}
	st, err := src.Stage(ctx, r.f.id, dataDir, r.now(), func(m *checkpoint.Manifest) error {
		return checkpoint.Compare(m, configured)
	}, func(c checkpoint.Info, err error) {
		fmt.Fprintf(r.io.err, "skipping checkpoint %s (%s): %v\n", c.ID, c.Where, err)
	})
	if errors.Is(err, checkpoint.ErrMismatch) {
		return exitUsage, fmt.Errorf("%w\n(restore with the config the checkpoint was taken with; change the config afterwards)", err)
	}
	if err != nil {
		return exitFailure, err
	}
	return r.restore(ctx, st)
}

func pendingName(p *checkpoint.Pending) string {
	if p == nil {
		return ""
	}
	return "checkpoint " + p.Checkpoint
}

// configuredEventTypes is what the config says of each event type's state
// shape, as a checkpoint records it.
func configuredEventTypes(cfg *conf.Config) ([]checkpoint.EventType, error) {
	var out []checkpoint.EventType
	for i := range cfg.EventTypes {
		pet, err := pipeline.CompileEventType(&cfg.EventTypes[i], cfg.CSV.Flatten())
		if err != nil {
			return nil, err
		}
		out = append(out, pipeline.CheckpointEventType(pet))
	}
	return out, nil
}

// restore plans the cursor reset, asks, then prepares, swaps and resets.
// The staged copy is removed unless it was swapped in.
func (r *restorer) restore(ctx context.Context, st *checkpoint.Staged) (int, error) {
	swapped := false
	defer func() {
		if !swapped {
			st.Discard()
		} else {
			st.Release()
		}
	}()
	plans, err := r.plan(ctx, st.Manifest)
	if err != nil {
		return exitFailure, err
	}
	writer := state.NewWriterID()
	r.describe(st, plans, writer)
	if !r.confirm() {
		return exitFailure, errors.New("not confirmed; nothing changed")
	}
	prep, err := st.Prepare(writer)
	if err != nil {
		return exitFailure, err
	}
	pending := &checkpoint.Pending{Checkpoint: st.Manifest.ID, Created: r.now().UTC(), Resets: plans}
	aside, err := st.SwapIn(r.cfg.Daemon.DataDir, pending, r.now())
	if err != nil {
		return exitFailure, err
	}
	swapped = true
	fmt.Fprintf(r.io.out, "restored checkpoint %s into %s as writer %s (%d open staging files renamed, %d delivered outbox entries dropped)\n",
		st.Manifest.ID, r.cfg.Daemon.DataDir, prep.Writer, len(prep.Renamed), len(prep.Delivered))
	if aside != "" {
		fmt.Fprintf(r.io.out, "the previous data dir is kept at %s\n", aside)
	}
	return r.reset(ctx, pending)
}

// plan reads each event type's available offsets from Nakadi and plans
// its cursor reset. Nakadi must be reachable: nothing changes otherwise.
func (r *restorer) plan(ctx context.Context, m *checkpoint.Manifest) ([]checkpoint.ResetPlan, error) {
	var plans []checkpoint.ResetPlan
	for _, et := range m.EventTypes {
		parts, err := nakadi.Partitions(ctx, pipeline.NakadiConfig(r.cfg.Nakadi, et.Name), et.Name)
		if err != nil {
			return nil, fmt.Errorf("reading the partitions of %s from Nakadi (nothing changed): %w", et.Name, err)
		}
		plans = append(plans, checkpoint.PlanReset(m, et.Name, parts, r.cfg.Nakadi.ReadFrom))
	}
	return plans, nil
}

// describe prints what the restore will do, with the warnings.
func (r *restorer) describe(st *checkpoint.Staged, plans []checkpoint.ResetPlan, writer string) {
	w, m := r.io.out, st.Manifest
	ago := r.now().Sub(m.Created)
	fmt.Fprintf(w, "checkpoint %s (%s %s)\n", m.ID, st.From.Where, st.From.Location)
	fmt.Fprintf(w, "  taken %s (%s ago) by writer %s: %s in %d files, verified\n",
		m.Created.Format(time.RFC3339), age(ago), m.Writer, byteSize(m.Size()), len(m.Files))
	fmt.Fprintf(w, "  data dir %s is replaced; the current one is kept as %s.before-restore-<time>\n", r.cfg.Daemon.DataDir, r.cfg.Daemon.DataDir)
	fmt.Fprintf(w, "  the restored daemon writes as %s (a new writer id)\n", writer)
	fmt.Fprintln(w, "  Nakadi cursors reset to the checkpoint's (replay starts right after them):")
	for _, p := range plans {
		if len(p.Cursors) == 0 {
			fmt.Fprintf(w, "    %s: no cursor to reset\n", p.EventType)
		}
		for _, line := range cursorLines(p.Cursors) {
			fmt.Fprintf(w, "    %s\n", line)
		}
		for _, part := range p.Untouched {
			fmt.Fprintf(w, "    %s p%s: left alone (nothing applied in the checkpoint, read_from = end)\n", p.EventType, part)
		}
		for _, x := range p.Expired {
			fmt.Fprintf(w, "  WARNING: %s p%s: the checkpoint's offset %s is older than the oldest event Nakadi still has (%s): the events in between are LOST; the cursor goes to BEGIN\n",
				p.EventType, x.Partition, x.Offset, x.Oldest)
		}
	}
	if ago > r.f.retention {
		fmt.Fprintf(w, "  WARNING: the checkpoint is %s old, more than Nakadi's retention (%s, -retention): events after its cursors may be gone\n",
			age(ago), r.f.retention)
	}
	fmt.Fprintln(w, "  rows of events after the checkpoint may be delivered again (idempotent under newest-version-wins)")
}

// confirm asks on stdin unless -yes.
func (r *restorer) confirm() bool {
	if r.f.yes {
		return true
	}
	fmt.Fprint(r.io.out, "restore? type yes: ")
	line, _ := bufio.NewReader(r.io.in).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}

// reset moves each subscription's cursors, then clears the pending marker.
func (r *restorer) reset(ctx context.Context, p *checkpoint.Pending) (int, error) {
	for _, plan := range p.Resets {
		if len(plan.Cursors) == 0 {
			continue
		}
		cs := make([]nakadi.Cursor, len(plan.Cursors))
		for i, c := range plan.Cursors {
			cs[i] = nakadi.Cursor{EventType: c.EventType, Partition: c.Partition, Offset: c.Offset}
		}
		sub, err := nakadi.ResetCursors(ctx, pipeline.NakadiConfig(r.cfg.Nakadi, plan.EventType), cs)
		if err != nil {
			return exitFailure, fmt.Errorf("resetting the cursors of %s: %w\nthe data dir is restored; do not start the daemon: fix the problem and run `materializer checkpoint restore -resume`", plan.EventType, err)
		}
		fmt.Fprintf(r.io.out, "reset %d cursors of subscription %s (%s)\n", len(cs), sub, plan.EventType)
	}
	if err := checkpoint.ClearPending(r.cfg.Daemon.DataDir); err != nil {
		return exitFailure, err
	}
	fmt.Fprintln(r.io.out, "done: start the daemon")
	return exitOK, nil
}

// resume finishes a restore whose cursor reset failed.
func (r *restorer) resume(ctx context.Context) (int, error) {
	p, err := checkpoint.ReadPending(r.cfg.Daemon.DataDir)
	if err != nil {
		return exitFailure, err
	}
	if p == nil {
		fmt.Fprintf(r.io.out, "no restore pending in %s\n", r.cfg.Daemon.DataDir)
		return exitOK, nil
	}
	fmt.Fprintf(r.io.out, "resetting the Nakadi cursors of the restore of checkpoint %s\n", p.Checkpoint)
	return r.reset(ctx, p)
}
