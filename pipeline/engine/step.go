package engine

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"materializer/pipeline/compact"
	"materializer/pipeline/files"
	"materializer/pipeline/nakadi"
	"materializer/state"
)

// step is the in-memory side of one processing step: everything it changes
// is written to one Pebble batch at commit.
type step struct {
	now     int64
	batch   *state.Batch
	keys    map[string]*keyEntry
	mk      []byte      // arena of the step's slot keys: an entry's bytes are never rewritten (its strings point into them)
	scratch []byte      // slot + key of a lookup
	entries []keyEntry  // arena of the step's key entries
	order   []*keyEntry // the step's keys (first-touch order; sorted at commit)
	types   map[*eventType]bool
	slots   map[*slot]bool      // slots whose cursor or ring changed
	timers  map[*slot]timerScan // slots whose timers were scanned, by kind
	durable []*nakadi.Batch
	seal    map[state.FileID]bool // files to seal at commit regardless of size and age
	sealAll string                // seal every open file of this event type ("*": of all)
	sealed  []state.Outbox
	events  int
	more    bool   // timers left for another step
	encoded []byte // arena of the encoded states of the step's dirty keys
	// emitWaits holds, per session closed in this step, the time from its
	// first event's arrival to the close (observed once the step is durable).
	emitWaits []int64
	// cacheHits counts the key states found in the key cache; the rest of
	// the step's keys (order) were read from Pebble.
	cacheHits int
	rejects   map[rejectCount]int // rejected events by event type and cause (metrics.go)
}

// timerScan says which timer kinds of a slot a step scanned. Only a scan
// deletes or moves timers; new timers only lower the slot's in-memory
// earliest deadline, which stays exact for a kind that was not scanned.
type timerScan uint8

const (
	scannedSessions timerScan = 1 << iota
	scannedExpiries
)

// keyEntry is a key's state as this step sees it.
type keyEntry struct {
	slot       *slot
	slotKey    string // slot (4 bytes) + key: the step's and the cache's index
	key        []byte
	st         compact.KeyState
	dirty      bool
	ref        cacheRef // where the key cache found st (zero: st did not come from it); the new state is put there
	enc        []byte   // st encoded at commit (nil: deleted); valid after putKey
	best       []byte   // best event set in this step (valid until commit)
	bestOffset string
	bestDirty  bool
	bestGone   bool // best deleted in this step
}

// newStep starts a step for about events events (a size hint).
func (e *Engine) newStep(events int) *step {
	return &step{
		now:     e.now(),
		batch:   e.db.NewStepBatch(),
		encoded: e.encoded[:0],
		keys:    make(map[string]*keyEntry, events),
		order:   make([]*keyEntry, 0, events),
		entries: make([]keyEntry, 0, events),
		mk:      make([]byte, 0, 16*events),
		types:   map[*eventType]bool{},
		slots:   map[*slot]bool{},
		timers:  map[*slot]timerScan{},
		seal:    map[state.FileID]bool{},
	}
}

// applyStep applies jobs, extra (flush, ...) and due timers, then commits.
func (e *Engine) applyStep(jobs []*job, extra func(*step) error) error {
	start := time.Now()
	e.lastSealed = nil
	n := 0
	for _, j := range jobs {
		n += len(j.b.Events)
	}
	st := e.newStep(n)
	defer st.batch.Close()
	if err := e.prefetch(st, jobs); err != nil {
		return err
	}
	for _, j := range jobs {
		if err := e.applyJob(st, j); err != nil {
			return err
		}
	}
	if extra != nil {
		if err := extra(st); err != nil {
			return err
		}
	}
	if err := e.runTimers(st); err != nil {
		return err
	}
	if err := e.commit(st); err != nil {
		return err
	}
	e.more = st.more
	e.lastSealed = st.sealed
	e.opts.Metrics.observeStep(st, time.Since(start))
	return nil
}

// keyEntry returns a key's state in this step, loading it on first use.
func (e *Engine) keyEntry(st *step, sl *slot, key []byte) (*keyEntry, error) {
	ke, fresh := st.entry(sl, key)
	if !fresh {
		return ke, nil
	}
	if hit, err := e.fromCache(st, ke); hit || err != nil {
		return ke, err
	}
	_, err := e.db.KeyState(sl.id, ke.key, ke.st.Decode)
	return ke, err
}

// fromCache loads a new entry's state from the key cache; on a miss
// (hit false) the caller reads it from Pebble.
func (e *Engine) fromCache(st *step, ke *keyEntry) (hit bool, err error) {
	hit, err = e.cache.get(ke.slotKey, &ke.st, &ke.ref)
	if hit {
		st.cacheHits++
	}
	return hit, err
}

// entry returns the step's entry for a key; fresh is true when it was just
// created (its state not loaded yet).
func (st *step) entry(sl *slot, key []byte) (ke *keyEntry, fresh bool) {
	st.scratch = append(st.scratch[:0], byte(sl.id>>24), byte(sl.id>>16), byte(sl.id>>8), byte(sl.id))
	st.scratch = append(st.scratch, key...)
	if ke, ok := st.keys[string(st.scratch)]; ok {
		return ke, false
	}
	if cap(st.mk)-len(st.mk) < len(st.scratch) {
		// A new arena; the old one stays as it is for the entries using it.
		st.mk = make([]byte, 0, max(16<<10, 2*cap(st.mk), len(st.scratch)))
	}
	n := len(st.mk)
	st.mk = append(st.mk, st.scratch...)
	mk := st.mk[n:len(st.mk):len(st.mk)]
	if len(st.entries) == cap(st.entries) {
		st.entries = make([]keyEntry, 0, max(64, 2*cap(st.entries)))
	}
	st.entries = append(st.entries, keyEntry{slot: sl, slotKey: unsafe.String(&mk[0], len(mk)), key: mk[4:]})
	ke = &st.entries[len(st.entries)-1]
	st.keys[ke.slotKey] = ke
	st.order = append(st.order, ke)
	return ke, true
}

// prefetch loads the state of every key the jobs touch, per slot with one
// sorted pass (state.DB.KeyStates), before any event is applied.
func (e *Engine) prefetch(st *step, jobs []*job) error {
	bySlot := map[*slot][]*keyEntry{}
	for _, j := range jobs {
		if j.et == nil || j.b.Lost {
			continue
		}
		sl := e.slotFor(st, j.et, j.b.Cursor.Partition)
		for i := range j.events {
			if j.events[i].reject != "" {
				continue
			}
			ke, fresh := st.entry(sl, j.bytes(j.events[i].key))
			if !fresh {
				continue
			}
			hit, err := e.fromCache(st, ke)
			if err != nil {
				return err
			}
			if !hit {
				bySlot[sl] = append(bySlot[sl], ke)
			}
		}
	}
	for sl, entries := range bySlot {
		slices.SortFunc(entries, func(a, b *keyEntry) int { return bytes.Compare(a.key, b.key) })
		keys := make([][]byte, len(entries))
		for i, ke := range entries {
			keys[i] = ke.key
		}
		if err := e.db.KeyStates(sl.id, keys, func(i int, v []byte) error { return entries[i].st.Decode(v) }); err != nil {
			return err
		}
	}
	return nil
}

// applyJob applies one Nakadi batch.
func (e *Engine) applyJob(st *step, j *job) error {
	b := j.b
	if j.et == nil {
		e.log.Warn().Str("event_type", b.Cursor.EventType).Str("partition", b.Cursor.Partition).
			Int("events", len(b.Events)).Msg("batch of an event type that is not configured: committed without processing")
		st.durable = append(st.durable, b)
		return nil
	}
	sl := e.slotFor(st, j.et, b.Cursor.Partition)
	e.remember(sl) // admit, holdOrRelease, advance and partitionLost change its memory
	if b.Lost {
		return e.partitionLost(st, sl, b)
	}
	skip := e.admit(sl, j)
	if e.trace != nil && skip > 0 {
		e.trace("%s/%s skip %d redelivered", j.et.Name, sl.part.Partition, skip)
	}
	et := j.et
	if skip > 0 {
		et.counters.Redelivered += uint64(skip)
		st.types[et] = true
	}
	if skip == len(b.Events) {
		e.holdOrRelease(st, sl, b)
		return nil
	}
	st.types[et] = true
	for i := skip; i < len(b.Events); i++ {
		if err := e.applyEvent(st, sl, j, i); err != nil {
			return err
		}
	}
	st.events += len(b.Events) - skip
	e.advance(st, sl, j, skip)
	return nil
}

// applyEvent classifies one event and records what it does.
func (e *Engine) applyEvent(st *step, sl *slot, j *job, i int) error {
	et, ev, raw := j.et, &j.events[i], j.b.Events[i]
	et.counters.Received++
	if ev.reject != "" {
		if e.trace != nil {
			e.trace("%s/%s event %d: rejected: %s", et.Name, sl.part.Partition, i, ev.reject)
		}
		et.counters.Rejected++
		return e.appendRejected(st, sl, j.b.Cursor.Offset, ev.reject, ev.cause, raw)
	}
	ke, err := e.keyEntry(st, sl, j.bytes(ev.key))
	if err != nil {
		return err
	}
	outcome := compact.Decide(&ke.st, compact.Event{Order: j.bytes(ev.order), EID: j.bytes(ev.eid)}, st.now, et.Window)
	if e.trace != nil {
		e.trace("%s/%s event %d: %s", et.Name, sl.part.Partition, i, outcome)
	}
	switch outcome {
	case compact.Opened:
		et.counters.Open++
		ke.setBest(raw, j.b.Cursor.Offset)
		deadline := ke.st.Deadline(et.Window)
		st.batch.PutTimer(state.SessionTimer, sl.id, deadline, ke.key)
		sl.nextSession = min(sl.nextSession, deadline)
	case compact.Replaced:
		et.counters.Superseded++
		ke.setBest(raw, j.b.Cursor.Offset)
	case compact.Duplicate:
		et.counters.Duplicate++
	case compact.Correction:
		return e.emit(st, sl, files.KindCorrection, raw, j.b.Cursor.Offset, ev.occurred, &et.counters.Correction)
	}
	return nil
}

func (ke *keyEntry) setBest(raw []byte, offset string) {
	ke.dirty = true
	ke.best, ke.bestOffset, ke.bestDirty, ke.bestGone = raw, offset, true, false
}

// loadBest returns the key's best event, from this step or from state.
func (e *Engine) loadBest(ke *keyEntry) (raw []byte, offset string, err error) {
	if ke.bestDirty {
		return ke.best, ke.bestOffset, nil
	}
	offset, raw, err = e.db.Best(ke.slot.id, ke.key)
	if err == nil && raw == nil {
		err = fmt.Errorf("%w: open session without a best event (slot %d)", errBroken, ke.slot.id)
	}
	return raw, offset, err
}

// closeSession emits the best event of an open session to main and starts
// the key's retention.
func (e *Engine) closeSession(st *step, ke *keyEntry) error {
	sl := ke.slot
	raw, offset, err := e.loadBest(ke)
	if err != nil {
		return err
	}
	if e.trace != nil {
		e.trace("%s/%s close %s", sl.et.Name, sl.part.Partition, ke.describe())
	}
	if err := e.emit(st, sl, files.KindMain, raw, offset, 0, &sl.et.counters.Main); err != nil {
		return err
	}
	sl.et.counters.Open--
	st.types[sl.et] = true
	st.emitWaits = append(st.emitWaits, st.now-ke.st.OpenedAt)
	ke.st.Close(st.now)
	ke.dirty = true
	ke.best, ke.bestDirty, ke.bestGone = nil, false, true
	expires := ke.st.ExpiresAt(sl.et.Window)
	st.batch.PutTimer(state.ExpiryTimer, sl.id, expires, ke.key)
	sl.nextExpiry = min(sl.nextExpiry, expires)
	return nil
}

// runTimers closes due sessions — and every session of a slot that is
// closing (flush, lost partition) — and forgets keys past their retention,
// at most StepEvents of them per step: the rest follow in the next steps, so
// a flush of a million sessions never builds one giant step.
func (e *Engine) runTimers(st *step) error {
	budget := e.opts.StepEvents
	for _, sl := range e.slotList() {
		if (sl.closing || sl.nextSession <= st.now) && budget > 0 {
			until := st.now
			if sl.closing {
				until = math.MaxInt64 - 1
			}
			n, done, err := e.dueSessions(st, sl, budget, until, sl.closing)
			if err != nil {
				return err
			}
			budget -= n
			st.timers[sl] |= scannedSessions
			if sl.closing && done {
				e.closed(st, sl)
			}
		}
		if sl.nextExpiry <= st.now && budget > 0 {
			n, err := e.dueExpiries(st, sl, budget)
			if err != nil {
				return err
			}
			budget -= n
			st.timers[sl] |= scannedExpiries
		}
	}
	st.more = budget <= 0
	return nil
}

// closed ends a slot's closing: a lost partition's files are sealed now.
func (e *Engine) closed(st *step, sl *slot) {
	e.remember(sl)
	sl.closing = false
	if !sl.sealWhenClosed {
		return
	}
	sl.sealWhenClosed = false
	for _, f := range e.stage.Files() {
		if f.ID.EventType == sl.part.EventType && f.ID.Partition == sl.part.Partition {
			st.seal[f.ID] = true
		}
	}
}

// dueSessions handles up to budget session timers of the slot with deadline
// <= until; force closes sessions whose real deadline is later too. done
// reports that no timer was left.
func (e *Engine) dueSessions(st *step, sl *slot, budget int, until int64, force bool) (n int, done bool, err error) {
	done = true
	err = e.db.Timers(state.SessionTimer, sl.id, until, func(deadline int64, key []byte) (bool, error) {
		if n >= budget {
			done = false
			return false, nil
		}
		n++
		ke, err := e.keyEntry(st, sl, key)
		if err != nil {
			return false, err
		}
		st.batch.DeleteTimer(state.SessionTimer, sl.id, deadline, ke.key)
		if !ke.st.Open {
			return true, nil // stale: the session was closed meanwhile
		}
		if real := ke.st.Deadline(sl.et.Window); real > st.now && !force {
			st.batch.PutTimer(state.SessionTimer, sl.id, real, ke.key) // the session got more events
			return true, nil
		}
		return true, e.closeSession(st, ke)
	})
	return n, done, err
}

func (e *Engine) dueExpiries(st *step, sl *slot, budget int) (int, error) {
	n := 0
	err := e.db.Timers(state.ExpiryTimer, sl.id, st.now, func(deadline int64, key []byte) (bool, error) {
		if n >= budget {
			return false, nil
		}
		n++
		ke, err := e.keyEntry(st, sl, key)
		if err != nil {
			return false, err
		}
		st.batch.DeleteTimer(state.ExpiryTimer, sl.id, deadline, ke.key)
		if ke.st.Expired(st.now, sl.et.Window) {
			if e.trace != nil {
				e.trace("%s/%s forget %s", sl.et.Name, sl.part.Partition, ke.describe())
			}
			ke.st = compact.KeyState{}
			ke.dirty = true
		}
		return true, nil
	})
	return n, err
}

// partitionLost closes the partition's sessions and then seals its files,
// so the partition's new owner needs no handover (docs/design.md). The
// sessions close in this and the following steps (runTimers).
func (e *Engine) partitionLost(st *step, sl *slot, b *nakadi.Batch) error {
	e.log.Info().Str("event_type", sl.part.EventType).Str("partition", sl.part.Partition).
		Str("stream_id", b.StreamID).Msg("partition lost: closing its sessions and sealing its files")
	sl.resetStream("")
	sl.closing, sl.sealWhenClosed = true, true
	return nil
}

// describe renders the key for traces and status: its components joined by '|'.
func (ke *keyEntry) describe() string {
	parts := compact.KeyParts(ke.key)
	out := make([]byte, 0, len(ke.key))
	for i, p := range parts {
		if i > 0 {
			out = append(out, '|')
		}
		out = append(out, p...)
	}
	return string(out)
}
