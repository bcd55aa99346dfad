package nakadi

import (
	"sync"
	"time"
)

// streamPart names one partition on one stream: cursors are tracked and
// committed per stream, with the stream id they came from.
type streamPart struct {
	stream string
	key    PartitionKey
}

// entry is one handed-out event batch in its partition's queue.
type entry struct {
	q        *partQueue
	cursor   Cursor
	events   int
	received time.Time
	durable  bool
}

// partQueue holds the handed-out batches of one partition of one stream in
// arrival order, and the newest cursor ready to commit (its batch and every
// earlier one are durable).
type partQueue struct {
	sp       streamPart
	entries  []*entry
	ready    *entry // to commit next
	inflight *entry // being committed
	// readyEvents and inflightEvents count the events ready and inflight
	// cover (the ready cursor covers every durable batch before it).
	readyEvents, inflightEvents int
	dropped                     bool
}

// commitItem is one cursor to commit.
type commitItem struct {
	sp     streamPart
	entry  *entry
	events int // events this commit covers
}

// tracker keeps the commit state of every stream-partition. Durable may be
// called from any goroutine, in any order across partitions.
type tracker struct {
	mu     sync.Mutex
	queues map[streamPart]*partQueue
	// uncommitted counts events handed out and not yet committed.
	uncommitted int
}

func newTracker() *tracker { return &tracker{queues: make(map[streamPart]*partQueue)} }

// add appends a handed-out batch to its queue.
func (t *tracker) add(b *Batch, now time.Time) *entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	sp := streamPart{b.StreamID, b.Cursor.Key()}
	q := t.queues[sp]
	if q == nil {
		q = &partQueue{sp: sp}
		t.queues[sp] = q
	}
	e := &entry{q: q, cursor: b.Cursor, events: len(b.Events), received: now}
	q.entries = append(q.entries, e)
	t.uncommitted += e.events
	return e
}

// abandon removes a batch that was registered but not handed out. Only the
// newest batch of its queue can be abandoned.
func (t *tracker) abandon(e *entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := e.q
	if n := len(q.entries); !q.dropped && n > 0 && q.entries[n-1] == e {
		q.entries = q.entries[:n-1]
		t.uncommitted -= e.events
		t.forgetIfIdle(q)
	}
}

// durable marks e durable and moves its queue's ready cursor forward over
// every leading durable batch. It reports whether a cursor became ready.
func (t *tracker) durable(e *entry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := e.q
	if q.dropped || e.durable {
		return false
	}
	e.durable = true
	moved := false
	for len(q.entries) > 0 && q.entries[0].durable {
		q.ready = q.entries[0]
		q.readyEvents += q.ready.events
		q.entries[0] = nil
		q.entries = q.entries[1:]
		moved = true
	}
	if len(q.entries) == 0 {
		q.entries = nil // let the backing array go
	}
	return moved
}

// take removes the ready cursors and returns them grouped by stream id.
func (t *tracker) take() map[string][]commitItem {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out map[string][]commitItem
	for sp, q := range t.queues {
		if q.ready == nil {
			continue
		}
		if out == nil {
			out = make(map[string][]commitItem)
		}
		out[sp.stream] = append(out[sp.stream], commitItem{sp, q.ready, q.readyEvents})
		q.inflight, q.ready = q.ready, nil
		q.inflightEvents, q.readyEvents = q.readyEvents, 0
	}
	return out
}

// committed records that it was committed (or was outdated: covered).
func (t *tracker) committed(it commitItem) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.queues[it.sp]
	if q == nil || q.inflight != it.entry {
		return
	}
	t.uncommitted -= q.inflightEvents
	q.inflight, q.inflightEvents = nil, 0
	t.forgetIfIdle(q)
}

// retry puts a cursor whose commit failed transiently back, unless a newer
// one became ready meanwhile.
func (t *tracker) retry(it commitItem) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.queues[it.sp]
	if q == nil || q.inflight != it.entry {
		return
	}
	q.inflight = nil
	q.readyEvents += q.inflightEvents
	q.inflightEvents = 0
	if q.ready == nil {
		q.ready = it.entry
	}
}

// drop forgets a stream-partition (422 on commit, or lost): its pending
// cursors are never committed and later Durable calls for it are ignored.
// It reports whether the queue existed.
func (t *tracker) drop(sp streamPart) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.queues[sp]
	if q == nil {
		return false
	}
	q.dropped = true
	for _, e := range q.entries {
		t.uncommitted -= e.events
	}
	t.uncommitted -= q.readyEvents + q.inflightEvents
	q.entries, q.ready, q.inflight = nil, nil, nil
	q.readyEvents, q.inflightEvents = 0, 0
	delete(t.queues, sp)
	return true
}

// forgetIfIdle deletes a queue with nothing left to commit. A later batch of
// the same stream-partition starts a new queue. Called with t.mu held.
func (t *tracker) forgetIfIdle(q *partQueue) {
	if len(q.entries) == 0 && q.ready == nil && q.inflight == nil {
		delete(t.queues, q.sp)
	}
}

// pending reports whether anything handed out is not yet committed (or
// dropped): the drain waits for this to become false.
func (t *tracker) pending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queues) > 0
}

// uncommittedEvents returns the events handed out and not yet committed.
func (t *tracker) uncommittedEvents() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.uncommitted
}

// committing reports whether a durable cursor waits for its commit (ready
// or in flight).
func (t *tracker) committing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, q := range t.queues {
		if q.ready != nil || q.inflight != nil {
			return true
		}
	}
	return false
}

// forgetUndurable drops the queues that hold only batches not marked
// durable (none ready or in flight) and returns how many events they had.
func (t *tracker) forgetUndurable() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for sp, q := range t.queues {
		if q.ready != nil || q.inflight != nil {
			continue
		}
		for _, e := range q.entries {
			n += e.events
			t.uncommitted -= e.events
		}
		q.dropped, q.entries = true, nil
		delete(t.queues, sp)
	}
	return n
}
