package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"materializer/pipeline/outbox"
)

// A handover gives everything this member holds to the rest of the fleet
// (docs/design.md, scale-out): stop reading (every consumer stops handing
// out batches and closes its stream), wait until the engine applied what
// was handed out (Barrier), close every open session and seal every file
// (Flush), deliver every file in the outbox (upload, then notice), and
// make sure every durable cursor is committed (Settle). The cursors are
// committed as soon as the state they produced is durable, as always —
// not after the delivery: Nakadi's closing window is only commit_timeout
// long. The partitions move to the other members once their cursors are
// committed; what a stopped stream had sent but the pipeline had not
// applied is re-sent to them.
//
// A stop (SIGTERM with daemon.on_stop = "handover") and POST /v1/drain run
// it; a drained pipeline stays idle until Undrain.

// HandoverResult is the answer of a drain and what a stop logs.
type HandoverResult struct {
	Files []outbox.Delivered `json:"files"` // sealed by the handover, each delivered
	// Resent counts events handed out but never durable (held back as
	// redelivered): Nakadi re-sends them to the partition's next owner.
	Resent int      `json:"events_left_to_nakadi"`
	Took   string   `json:"took"`
	Left   Leftover `json:"left"`
}

// Leftover is the work that stays in the data dir: nothing after a
// complete handover. The daemon started again on the data dir delivers it.
type Leftover struct {
	OpenSessions      uint64 `json:"open_sessions"`
	OpenFiles         int    `json:"open_files"`
	OpenFileBytes     int64  `json:"open_file_bytes"`
	PendingFiles      int64  `json:"undelivered_files"`
	PendingBytes      int64  `json:"undelivered_bytes"`
	UncommittedEvents int    `json:"uncommitted_events"`
	DeliveryError     string `json:"delivery_error,omitempty"` // the outbox's last error
}

func (l Leftover) String() string {
	s := fmt.Sprintf("%d open sessions, %d open files (%d bytes), %d undelivered files (%d bytes), %d uncommitted events",
		l.OpenSessions, l.OpenFiles, l.OpenFileBytes, l.PendingFiles, l.PendingBytes, l.UncommittedEvents)
	if l.DeliveryError != "" {
		s += "; last delivery error: " + l.DeliveryError
	}
	return s
}

// Empty reports whether nothing stays.
func (l Leftover) Empty() bool {
	return l.OpenSessions == 0 && l.OpenFiles == 0 && l.PendingFiles == 0
}

// ErrHandoverIncomplete: a handover ended (its budget ran out, storage or
// NATS failed, the engine stopped) with work left in the data dir.
var ErrHandoverIncomplete = errors.New("handover incomplete")

// Drain hands this member's work over and leaves the pipeline idle but
// running (POST /v1/drain): Ready turns false, the status says drained.
// Draining again finishes what a drain cut short; Undrain undoes it.
func (p *Pipeline) Drain(ctx context.Context) (HandoverResult, error) {
	if !p.recovered.Load() {
		return HandoverResult{Files: []outbox.Delivered{}}, ErrNotRunning
	}
	res, err := p.handover(ctx)
	if err == nil {
		p.plog.Info().Int("files", len(res.Files)).Str("took", res.Took).Msg("drained: this member holds nothing; its partitions went to the other members")
	}
	return res, err
}

// Undrain undoes Drain: every event type not paused by an operator
// consumes again (unless backpressure holds it).
func (p *Pipeline) Undrain(context.Context) error {
	if !p.recovered.Load() {
		return ErrNotRunning
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.drained {
		return nil
	}
	p.drained = false
	for name, c := range p.consumers {
		if !p.held(name) {
			c.Resume()
		}
	}
	p.plog.Info().Msg("undrained: consuming again")
	return nil
}

// Drained reports whether a drain (or a stop's handover) stopped reading.
func (p *Pipeline) Drained() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drained
}

// handover runs the steps of a handover, one at a time (a stop waits for
// a drain under way).
func (p *Pipeline) handover(ctx context.Context) (res HandoverResult, err error) {
	start := time.Now()
	res.Files = []outbox.Delivered{}
	select {
	case p.handing <- struct{}{}:
		defer func() { <-p.handing }()
	case <-ctx.Done():
		return p.leftover(res, start), fmt.Errorf("%w: waiting for the drain under way: %w", ErrHandoverIncomplete, ctx.Err())
	}
	defer func() {
		res = p.leftover(res, start)
		if err != nil {
			err = fmt.Errorf("%w: %w; left in the data dir: %s", ErrHandoverIncomplete, err, res.Left)
		}
	}()
	p.stopReading()
	if err := p.eng.Barrier(ctx); err != nil {
		return res, fmt.Errorf("applying what was read: %w", err)
	}
	sealed, err := p.eng.Flush(ctx, "")
	if err != nil {
		return res, fmt.Errorf("closing sessions and sealing files: %w", err)
	}
	keys := make([]string, len(sealed))
	for i, o := range sealed {
		keys[i] = o.Key
	}
	if res.Files, err = p.outbox.Wait(ctx, "", keys); err != nil {
		res.Files = []outbox.Delivered{}
		return res, fmt.Errorf("delivering: %w", err)
	}
	for _, c := range p.consumerList() {
		n, err := c.Settle(ctx)
		if err != nil {
			return res, fmt.Errorf("committing: %w", err)
		}
		res.Resent += n
	}
	return res, nil
}

// stopReading pauses every consumer and marks the pipeline drained, so
// that neither backpressure nor an operator's resume starts one again.
func (p *Pipeline) stopReading() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drained = true
	for _, c := range p.consumers {
		c.Pause()
	}
}

// leftover fills in what stays and how long it took.
func (p *Pipeline) leftover(res HandoverResult, start time.Time) HandoverResult {
	res.Took = time.Since(start).Round(time.Millisecond).String()
	var l Leftover
	for _, et := range p.eng.Status().EventTypes {
		l.OpenSessions += et.Counters.Open
		l.OpenFiles += et.OpenFiles
		l.OpenFileBytes += et.OpenFileBytes
	}
	d := p.outbox.Status()
	l.PendingFiles, l.PendingBytes, l.DeliveryError = d.PendingFiles, d.PendingBytes, d.LastError
	for _, c := range p.consumerList() {
		l.UncommittedEvents += c.Status().Uncommitted
	}
	res.Left = l
	return res
}
