package nakadi

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Buffers bounds the memory of batches read and not yet handed out, shared
// by every consumer of a daemon (docs/performance.md#memory). Before a
// stream reads a line it reserves what it expects the line to take (as much
// as its last batch line); once the line is read it settles the
// reservation to what the batch holds, and the batch gives it back when it
// is handed out or dropped. A thousand event types that all have a batch
// waiting then hold at most the budget, not a batch each: a stream that
// finds the budget spent waits, and Nakadi's data waits in the socket.
type Buffers struct {
	sem    *semaphore.Weighted
	size   int64
	inUse  atomic.Int64
	waited atomic.Int64 // nanoseconds streams spent waiting for memory
}

// NewBuffers returns a budget of size bytes (nil, no bound, when size ≤ 0).
func NewBuffers(size int64) *Buffers {
	if size <= 0 {
		return nil
	}
	return &Buffers{sem: semaphore.NewWeighted(size), size: size}
}

// InUse is the memory batches hold now.
func (b *Buffers) InUse() int64 {
	if b == nil {
		return 0
	}
	return b.inUse.Load()
}

// Waited is how long streams have waited for memory in all.
func (b *Buffers) Waited() time.Duration {
	if b == nil {
		return 0
	}
	return time.Duration(b.waited.Load())
}

// reserve takes n bytes (at most the whole budget: a line larger than the
// budget is read once everything else was given back).
func (b *Buffers) reserve(ctx context.Context, n int64) (int64, error) {
	if b == nil || n <= 0 {
		return 0, nil
	}
	n = min(n, b.size)
	if !b.sem.TryAcquire(n) {
		start := time.Now()
		err := b.sem.Acquire(ctx, n)
		b.waited.Add(int64(time.Since(start)))
		if err != nil {
			return 0, err
		}
	}
	b.inUse.Add(n)
	return n, nil
}

// release gives n reserved bytes back.
func (b *Buffers) release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.inUse.Add(-n)
	b.sem.Release(n)
}

// settle turns a reservation of had bytes into one of want: it takes the
// difference (waiting if it must) or gives it back. It returns what is
// reserved now.
func (b *Buffers) settle(ctx context.Context, had, want int64) (int64, error) {
	if b == nil {
		return 0, nil
	}
	want = min(want, b.size)
	switch {
	case want > had:
		more, err := b.reserve(ctx, want-had)
		return had + more, err
	case want < had:
		b.release(had - want)
		return want, nil
	}
	return had, nil
}
