package engine

import (
	"math"
	"sort"

	"materializer/pipeline/nakadi"
	"materializer/state"
)

// slot is the engine's view of one (event type, partition).
//
// Redelivery (docs/design.md): Nakadi resends everything after its committed
// cursor C, which can be behind the last batch we applied (A). A batch cursor
// names only the batch's last offset and offsets can have gaps, so the events
// to skip are counted: the ring keeps, per recent durable batch, its offset
// and how many events it applied. When a stream's first batch of the
// partition arrives with C, the events to skip are the ring's counts after
// the entry at C. A batch that is skipped entirely is held back — not marked
// durable — until a later batch ends on a ring boundary, so Nakadi's
// committed cursor always lands on a boundary the ring knows.
type slot struct {
	id   state.Slot
	part state.Partition
	et   *eventType
	cur  state.Cursor
	ring []state.RingEntry

	slotMemory // per stream and while closing, in memory only (faults.go)

	nextSession int64 // earliest session timer (MaxInt64: none)
	nextExpiry  int64 // earliest retention timer
	// Every session (retention) timer before these deadlines is gone: scans
	// start there, not at the tombstones of the timers handled before.
	sessionFloor, expiryFloor int64
}

func (sl *slot) resetStream(stream string) {
	sl.stream, sl.skip, sl.expectEID, sl.skipThrough, sl.held = stream, 0, "", "", nil
}

// slotFor returns the slot of (event type, partition), allocating one.
func (e *Engine) slotFor(st *step, et *eventType, partition string) *slot {
	p := state.Partition{EventType: et.Name, Partition: partition}
	if sl, ok := e.slots[p]; ok {
		return sl
	}
	sl := &slot{id: e.nextSlot, part: p, et: et, nextSession: math.MaxInt64, nextExpiry: math.MaxInt64,
		sessionFloor: math.MinInt64, expiryFloor: math.MinInt64}
	e.nextSlot++
	e.slots[p] = sl
	et.slots = append(et.slots, sl)
	e.slotOrder = append(e.slotOrder, sl)
	st.batch.PutSlot(p, sl.id)
	st.slots[sl] = true
	return sl
}

// admit returns how many leading events of the job's batch were applied
// before and must be skipped.
func (e *Engine) admit(sl *slot, j *job) int {
	b := j.b
	if b.StreamID != sl.stream {
		sl.resetStream(b.StreamID)
	}
	if b.Committed != nil {
		e.startSkipping(sl, b.Committed.Offset)
	}
	n := len(b.Events)
	if sl.skipThrough != "" {
		if nakadi.CompareOffsets(b.Cursor.Offset, sl.skipThrough) <= 0 {
			return n
		}
		sl.skipThrough = ""
		return 0
	}
	k := min(sl.skip, n)
	if k > 0 && sl.expectEID != "" {
		if got := string(j.bytes(j.events[0].eid)); got != "" && got != sl.expectEID {
			e.opts.Metrics.RedeliveryMismatch.Inc()
			e.log.Error().Str("event_type", sl.part.EventType).Str("partition", sl.part.Partition).
				Str("expected_eid", sl.expectEID).Str("got_eid", got).Int("would_skip", sl.skip).
				Msg("redelivered events do not start where expected: applying them again instead of skipping (they will count as duplicates)")
			sl.skip, k = 0, 0
		}
		sl.expectEID = ""
	}
	sl.skip -= k
	return k
}

// startSkipping sets up the skip count for a stream resuming after C.
func (e *Engine) startSkipping(sl *slot, committed string) {
	sl.skip, sl.expectEID, sl.skipThrough = 0, "", ""
	a := sl.cur.Offset
	if a == "" || nakadi.CompareOffsets(committed, a) >= 0 {
		return
	}
	i, ok := sl.ringIndex(committed)
	if !ok {
		e.opts.Metrics.RedeliveryMismatch.Inc()
		e.log.Error().Str("event_type", sl.part.EventType).Str("partition", sl.part.Partition).
			Str("committed", committed).Str("applied", a).
			Msg("Nakadi resumes from a cursor this daemon did not commit (reset by an operator?): skipping whole batches up to the applied offset; one batch may be applied twice")
		sl.skipThrough = a
		return
	}
	for _, r := range sl.ring[i+1:] {
		sl.skip += int(r.Count)
	}
	if i+1 < len(sl.ring) {
		sl.expectEID = sl.ring[i+1].FirstEID
	}
}

// holdOrRelease handles a batch whose events were all applied before: it
// becomes durable with the next batch that ends on a ring boundary.
func (e *Engine) holdOrRelease(st *step, sl *slot, b *nakadi.Batch) {
	sl.held = append(sl.held, b)
	if sl.onBoundary(b.Cursor.Offset) {
		st.durable = append(st.durable, sl.held...)
		sl.held = nil
	}
}

func (sl *slot) onBoundary(offset string) bool {
	_, ok := sl.ringIndex(offset)
	return ok
}

// ringIndex finds the ring entry (a recent durable batch) ending on offset.
func (sl *slot) ringIndex(offset string) (int, bool) {
	i := sort.Search(len(sl.ring), func(i int) bool { return nakadi.CompareOffsets(sl.ring[i].Offset, offset) >= 0 })
	return i, i < len(sl.ring) && sl.ring[i].Offset == offset
}

// advance records an applied batch: a ring entry, the new cursor, and the
// batch (with any held before it) to mark durable after the commit.
func (e *Engine) advance(st *step, sl *slot, j *job, skip int) {
	b := j.b
	st.durable = append(st.durable, sl.held...)
	st.durable = append(st.durable, b)
	sl.held = nil
	if sl.cur.Offset != "" && nakadi.CompareOffsets(b.Cursor.Offset, sl.cur.Offset) <= 0 {
		return // applied again after a mismatch: the ring already covers it
	}
	if sl.cur.Offset == "" && b.Committed != nil {
		// The partition's first applied batch: the cursor Nakadi resumed
		// from is a boundary too (with no events after the previous one).
		// A crash before the first commit resumes from there.
		base := state.RingEntry{Seq: sl.cur.RingNext, Offset: b.Committed.Offset}
		st.batch.PutRing(sl.id, base)
		sl.ring = append(sl.ring, base)
		sl.cur.RingNext++
	}
	r := state.RingEntry{Seq: sl.cur.RingNext, Offset: b.Cursor.Offset, Count: uint64(len(b.Events) - skip),
		FirstEID: string(j.bytes(j.events[skip].eid))}
	st.batch.PutRing(sl.id, r)
	sl.ring = append(sl.ring, r)
	sl.cur.RingNext++
	sl.cur.Offset = b.Cursor.Offset
	e.pruneRing(st, sl)
	st.slots[sl] = true
}

// pruneRing drops ring entries Nakadi can no longer resume from: its window
// of uncommitted events bounds how far behind our cursor its committed
// cursor can be. Twice the window is kept, for safety.
func (e *Engine) pruneRing(st *step, sl *slot) {
	limit := uint64(2 * e.opts.MaxUncommitted)
	var after uint64
	keep := 0
	for i := len(sl.ring) - 1; i >= 0; i-- {
		if after > limit {
			keep = i + 1
			break
		}
		after += sl.ring[i].Count
	}
	if keep == 0 {
		return
	}
	sl.ring = sl.ring[keep:]
	sl.cur.RingHead = sl.ring[0].Seq
	st.batch.DeleteRingBefore(sl.id, sl.cur.RingHead)
}
