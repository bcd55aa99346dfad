package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"syscall"
	"time"

	"materializer/internal/backoff"
	"materializer/pipeline/nakadi"
	"materializer/state"
)

// A step that fails is retried from recovered state, so that it applies
// exactly once or not at all; what a failure means decides how long
// (docs/operations.md#outages-and-backpressure):
//
//   - the staging disk is full (ENOSPC, EDQUOT): the step waits and is
//     retried until space returns, however long. The engine says so
//     (Failing), the pipeline stops reading and reports not ready, the
//     heartbeat goes on: waiting for space is healthy, and a restart would
//     not make space;
//   - committing the state batch failed: Pebble keeps a failed write of its
//     log as the error of every later commit, so Run returns at once and a
//     restart recovers (a state disk that is full makes Pebble itself end
//     the process);
//   - a broken invariant: Run returns it;
//   - anything else (an fsync or write error, a staging directory that is
//     gone): retried with backoff up to Options.MaxStepFailures attempts in
//     a row, then Run returns the error wrapped in ErrGaveUp, so that the
//     process exits non-zero naming the cause and systemd restarts it. The
//     heartbeat stops meanwhile (Healthy fails after a minute: the watchdog
//     fires even if the retries hang).

// ErrGaveUp wraps the error of a step that failed Options.MaxStepFailures
// times in a row.
var ErrGaveUp = errors.New("engine: a processing step keeps failing")

// errStateCommit marks a failed commit of a step's state batch.
var errStateCommit = errors.New("engine: committing the state batch failed (Pebble keeps such an error: a restart recovers)")

// FailingStep is what Failing reports while a step fails and is retried.
type FailingStep struct {
	Err      string    // the last attempt's error
	DiskFull bool      // the staging disk is full: waiting for space
	Since    time.Time // the first failed attempt
	Attempts int       // failed attempts in a row
}

// Failing returns the failing step's state, nil while steps succeed.
func (e *Engine) Failing() *FailingStep { return e.failing.Load() }

// diskFull reports whether err means the disk has no space left.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskFullRetry caps the wait between the attempts of a step waiting for
// disk space: the pipeline resumes within it once space returns.
const diskFullRetry = 2 * time.Second

// runStep applies jobs (maybe none: a timer step) and commits, retrying a
// failed step as described above. It returns nil once the step is
// applied, ctx's error when ctx ends first, or the error it gives up on
// (also kept in e.stopped: Run returns it, even when the step was a
// flush's).
func (e *Engine) runStep(ctx context.Context, jobs []*job, extra func(*step) error) error {
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	attempts := 0 // failed attempts that count towards MaxStepFailures
	for {
		err := e.attempt(jobs, extra)
		if err == nil {
			e.stepSucceeded()
			return nil
		}
		full := diskFull(err) && !errors.Is(err, errStateCommit)
		if !full {
			attempts++
		}
		f := e.stepFailed(err, full, attempts)
		switch {
		case errors.Is(err, errBroken):
			e.stopped = err
		case errors.Is(err, errStateCommit):
			e.stopped = fmt.Errorf("%w: %w", ErrGaveUp, err)
		case attempts >= e.opts.MaxStepFailures:
			e.stopped = fmt.Errorf("%w: %d attempts in a row failed since %s, giving up so that a restart recovers: %w",
				ErrGaveUp, attempts, f.Since.Format(time.RFC3339), err)
		}
		if e.stopped != nil {
			e.log.Error().Err(e.stopped).Msg("giving up: the engine stops, and the process with it")
			return e.stopped
		}
		delay := bo.Next(0)
		if full {
			delay = min(delay, diskFullRetry)
			e.heartbeat.Store(time.Now().UnixNano()) // waiting for space is healthy
		}
		e.logFailure(f, err, delay)
		if !backoff.Sleep(ctx, delay) {
			return ctx.Err()
		}
	}
}

// attempt runs one attempt of a step: a recovery first when the last
// attempt failed (the memory of the slots carried over), then the step.
func (e *Engine) attempt(jobs []*job, extra func(*step) error) error {
	if e.mustRecover {
		if err := e.recoverKeeping(); err != nil {
			return fmt.Errorf("recovery after a failed step: %w", err)
		}
		e.mustRecover = false
	}
	clear(e.undo)
	if err := e.applyStep(jobs, extra); err != nil {
		e.mustRecover = true
		return err
	}
	return nil
}

// stepFailed publishes a failed attempt.
func (e *Engine) stepFailed(err error, full bool, attempts int) *FailingStep {
	f := &FailingStep{Err: err.Error(), DiskFull: full, Since: time.Now(), Attempts: attempts}
	if prev := e.failing.Load(); prev != nil {
		f.Since = prev.Since
	}
	e.failing.Store(f)
	e.opts.Metrics.StepErrors.Inc()
	e.opts.Metrics.DiskFull.Set(map[bool]float64{true: 1, false: 0}[full])
	return f
}

// stepSucceeded ends a failure, if there was one.
func (e *Engine) stepSucceeded() {
	f := e.failing.Swap(nil)
	if f == nil {
		return
	}
	e.opts.Metrics.DiskFull.Set(0)
	e.log.Info().Str("failing_since", f.Since.Format(time.RFC3339)).Stringer("for", time.Since(f.Since).Round(time.Second)).
		Bool("disk_full", f.DiskFull).Msg("the failing step succeeded: processing again")
}

// logFailure logs a failed attempt; a disk waiting for space is logged
// when it fills and then once a minute.
func (e *Engine) logFailure(f *FailingStep, err error, delay time.Duration) {
	if f.DiskFull {
		if !e.diskFullLogged.IsZero() && time.Since(e.diskFullLogged) < time.Minute {
			return
		}
		e.diskFullLogged = time.Now()
		e.log.Error().Err(err).Str("since", f.Since.Format(time.RFC3339)).
			Msg("staging disk full: consuming paused, not ready; the step is retried until space returns (free space, or let delivery remove sent files)")
		return
	}
	e.log.Error().Err(err).Int("attempt", f.Attempts).Int("max_attempts", e.opts.MaxStepFailures).Stringer("retry_in", delay).
		Msg("step failed; recovering staging files and state, then retrying")
}

// slotMemory is what a slot holds only in memory: the redelivery state of
// its current stream (redelivery.go) and whether it is closing (a flush, a
// lost partition). A failed step's retry rebuilds the slots from the
// committed state, so recoverKeeping carries this over, as it was before
// the failed step changed it: forgetting it would apply redelivered events
// again and never release held batches.
type slotMemory struct {
	stream      string
	skip        int             // events still to skip
	expectEID   string          // eid of the first event to skip, checked when known
	skipThrough string          // fallback: skip whole batches up to this offset
	held        []*nakadi.Batch // batches applied before, durable with the next ring boundary

	closing        bool // close every open session, over as many steps as it takes
	sealWhenClosed bool // then seal the partition's files (lost partition)
}

// remember keeps a slot's memory from before the current step changes it;
// the step calls it before it touches a slot's memory.
func (e *Engine) remember(sl *slot) {
	if _, ok := e.undo[sl.part]; ok {
		return
	}
	if e.undo == nil {
		e.undo = map[state.Partition]slotMemory{}
	}
	m := sl.slotMemory
	m.held = append([]*nakadi.Batch(nil), m.held...)
	e.undo[sl.part] = m
}

// recoverKeeping is recover for the retry of a failed step, with the
// slots' memory carried over.
func (e *Engine) recoverKeeping() error {
	if e.kept == nil {
		e.kept = make(map[state.Partition]slotMemory, len(e.slots))
		for p, sl := range e.slots {
			e.kept[p] = sl.slotMemory
		}
		for p, m := range e.undo {
			e.kept[p] = m // as before the failed step
		}
	}
	if err := e.recover(); err != nil {
		return err
	}
	for p, m := range e.kept {
		if sl := e.slots[p]; sl != nil { // a slot the failed step created is gone
			sl.slotMemory = m
		}
	}
	e.kept = nil
	return nil
}

// earliest is the slot's earliest timer of kind, read after a commit. If
// it cannot be read the timers are due now: the next step scans them and
// reads the earliest again. A failed read thus neither fails the step that
// is already committed (which would apply its batches again) nor loses a
// timer.
func (e *Engine) earliest(kind state.TimerKind, sl *slot) int64 {
	d, err := e.nextTimer(kind, sl)
	if err != nil {
		e.log.Error().Err(err).Str("event_type", sl.part.EventType).Str("partition", sl.part.Partition).
			Msg("reading the earliest timer after a commit failed: the next step scans the timers")
		return math.MinInt64
	}
	return d
}
