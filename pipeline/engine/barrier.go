package engine

import (
	"context"

	"materializer/pipeline/nakadi"
)

// barrier is one Barrier call on its way through the engine: the
// dispatcher stamps it with the number of jobs it queued so far, and the
// state writer closes done once that many jobs were applied.
type barrier struct {
	seq  uint64
	done chan struct{}
}

// Barrier returns once every batch that was on the engine's input when it
// was called is applied and durable (ErrStopped if the engine is not
// running). The caller stops the producers first (nakadi.Consumer.Pause
// returns only once nothing is on its way out), so that the flush that
// follows a barrier finds every handed-out event applied.
func (e *Engine) Barrier(ctx context.Context) error {
	if !e.recovered.Load() {
		return ErrStopped
	}
	b := &barrier{done: make(chan struct{})}
	select {
	case e.barrierIn <- b:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeBarrier, on the dispatcher: queue what is on the input now, then
// pass the barrier on, stamped.
func (e *Engine) takeBarrier(ctx context.Context, b *barrier, in <-chan *nakadi.Batch, queue func(*nakadi.Batch) bool) bool {
	for {
		select {
		case x, ok := <-in:
			if ok && !queue(x) {
				return false
			}
			if ok {
				continue
			}
		default:
		}
		break
	}
	b.seq = e.queued
	select {
	case e.barrierOut <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// releaseBarriers, on the state writer: closes the barriers whose jobs are
// all applied.
func (e *Engine) releaseBarriers() {
	kept := e.barriers[:0]
	for _, b := range e.barriers {
		if b.seq <= e.applied {
			close(b.done)
			continue
		}
		kept = append(kept, b)
	}
	e.barriers = kept
}
