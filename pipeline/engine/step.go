package engine

import (
	"bytes"
	"encoding/binary"
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
	written []state.File // records of the staging files the step wrote
	events  int
	more    bool        // timers left for another step
	encoded []byte      // arena of the encoded states of the step's dirty keys
	kept    []byte      // arena of best events read from moved session records
	head    []byte      // a session record's head, reused
	body    []byte      // a session record's body, reused
	filed   []filedNote // the session log's notes, applied after the commit
	// emitWaits holds, per session closed in this step, the time from its
	// first event's arrival to the close (observed once the step is durable).
	emitWaits []int64
	// cacheHits counts the key states found in the key cache, newKeys those
	// the key filter knew to be new; the rest of the step's keys (order)
	// were read from Pebble.
	cacheHits, newKeys int
	rejects            map[rejectCount]int // rejected events by event type and cause (metrics.go)
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
	best       []byte   // best event set in this step (valid until commit); appended to the session log at commit
	bestOffset string
	bestDirty  bool
	// From the key's session record, when a timer scan met it: the best
	// event's offset and the record's body (where the event is); moved:
	// the record is written again, with this body, under a later deadline.
	bodyOffset string
	body       []byte
	moved      bool
}

// newStep starts a step for about events events (a size hint).
func (e *Engine) newStep(events int) *step {
	now := e.now()
	if now < e.lastNow {
		// The clock went back: new timers may come before the floors.
		for _, sl := range e.slotList() {
			sl.sessionFloor, sl.expiryFloor = math.MinInt64, math.MinInt64
		}
	}
	e.lastNow = now
	return &step{
		now:     now,
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
	if known, err := e.fromMemory(st, ke); known || err != nil {
		return ke, err
	}
	_, err := e.db.KeyState(sl.id, ke.key, ke.st.Decode)
	return ke, err
}

// fromMemory loads a new entry's state from the key cache, or knows from
// the key filter that the key has none; otherwise (known false) the caller
// reads it from Pebble.
func (e *Engine) fromMemory(st *step, ke *keyEntry) (known bool, err error) {
	hit, err := e.cache.get(ke.slotKey, &ke.st, &ke.ref)
	switch {
	case hit || err != nil:
		st.cacheHits++
		return true, err
	case !e.filter.mayHave(ke.slotKey):
		st.newKeys++ // ke.st is empty: the key was never seen
		return true, nil
	}
	return false, nil
}

// entry returns the step's entry for a key; fresh is true when it was just
// created (its state not loaded yet).
func (st *step) entry(sl *slot, key []byte) (ke *keyEntry, fresh bool) {
	st.scratch = append(appendSlot(st.scratch[:0], sl.id), key...)
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

// appendSlot appends a slot id as the first 4 bytes of a slot key.
func appendSlot(dst []byte, id state.Slot) []byte {
	return append(dst, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
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
			known, err := e.fromMemory(st, ke)
			if err != nil {
				return err
			}
			if !known {
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
		ke.st.Filed = ke.st.Deadline(et.Window)
		sl.nextSession = min(sl.nextSession, ke.st.Filed)
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
	ke.best, ke.bestOffset, ke.bestDirty = raw, offset, true
}

// closeSession emits the best event of an open session (raw, read from its
// session record or set in this step) to main and starts the key's
// retention.
func (e *Engine) closeSession(st *step, ke *keyEntry, raw []byte, offset string) error {
	sl := ke.slot
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
	ke.best, ke.bestDirty = nil, false
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
	e.stage.Each(func(f *state.File) {
		if f.ID.EventType == sl.part.EventType && f.ID.Partition == sl.part.Partition {
			st.seal[f.ID] = true
		}
	})
}

// dueSessions handles up to budget sessions of the slot with deadline <=
// until, in one range scan over their records (which hold their state and
// best event); force closes sessions whose real deadline is later too. done
// reports that none was left.
func (e *Engine) dueSessions(st *step, sl *slot, budget int, until int64, force bool) (n int, done bool, err error) {
	done = true
	floor := st.now // every timer up to now is handled, and new ones come later
	err = e.db.Timers(state.SessionTimer, sl.id, sl.sessionFloor, until, func(deadline int64, key, val []byte) (bool, error) {
		if n >= budget {
			done = false
			floor = min(floor, deadline)
			return false, nil
		}
		n++
		ke, fresh := st.entry(sl, key)
		var rec compact.KeyState
		rest, err := rec.DecodePrefix(val)
		if err == nil {
			ke.bodyOffset, ke.body, err = splitHead(rest)
		}
		if err != nil {
			return false, fmt.Errorf("session record of slot %d: %w", sl.id, err)
		}
		if fresh {
			// Not touched in this step: the record holds the key's state,
			// so closing needs no read of it.
			ke.st = rec
		}
		st.batch.DeleteTimer(state.SessionTimer, sl.id, deadline, ke.key)
		if !ke.st.Open || ke.st.Filed != deadline {
			return true, nil // stale: another record is the session's
		}
		if real := ke.st.Deadline(sl.et.Window); real > st.now && !force {
			// The session got more events: file it under its real deadline.
			ke.st.Filed = real
			ke.dirty = true
			if !ke.bestDirty {
				ke.body, ke.moved = st.keep(ke.body), true
			}
			return true, nil
		}
		raw, offset := ke.best, ke.bestOffset
		if !ke.bestDirty {
			if raw, err = e.bestOf(st, ke.body); err != nil {
				return false, err
			}
			offset = ke.bodyOffset
		}
		return true, e.closeSession(st, ke, raw, offset)
	})
	if err == nil {
		sl.sessionFloor = max(sl.sessionFloor, floor)
	}
	return n, done, err
}

// keep copies b into the step's arena (a scan's values are valid only
// during its callback).
func (st *step) keep(b []byte) []byte {
	st.reserve(len(b))
	n := len(st.kept)
	st.kept = append(st.kept, b...)
	return st.kept[n:len(st.kept):len(st.kept)]
}

// reserve makes room for n more bytes in the step's arena: when it has too
// little, a new arena (the old one stays as it is for what uses it).
func (st *step) reserve(n int) {
	if cap(st.kept)-len(st.kept) < n {
		st.kept = make([]byte, 0, max(64<<10, 2*cap(st.kept), n))
	}
}

// appendSessionHead appends the head of a session record: the key state,
// then the best event's offset; the body follows it: the event's place in
// the session log (or, upgraded from state format 1, the event itself).
func appendSessionHead(dst []byte, ks *compact.KeyState, offset string) []byte {
	dst = ks.AppendEncoded(dst)
	dst = binary.AppendUvarint(dst, uint64(len(offset)))
	return append(dst, offset...)
}

// splitHead splits what follows the key state in a session record: the
// best event's offset and the body (aliasing rest).
func splitHead(rest []byte) (offset string, body []byte, err error) {
	n, k := binary.Uvarint(rest)
	if k <= 0 || uint64(len(rest)-k) < n {
		return "", nil, compact.ErrCorrupt
	}
	return string(rest[k : k+int(n)]), rest[k+int(n):], nil
}

// bestOf returns the best event a record body names, read into the step's
// arena (a body is valid only during its scan's callback).
func (e *Engine) bestOf(st *step, body []byte) ([]byte, error) {
	inline, loc, inLog, err := parseBody(body)
	switch {
	case err != nil:
		return nil, err
	case !inLog:
		return st.keep(inline), nil
	}
	st.reserve(int(loc.len))
	n := len(st.kept)
	if st.kept, err = e.sessions.read(st.kept, loc); err != nil {
		return nil, err
	}
	return st.kept[n:len(st.kept):len(st.kept)], nil
}

func (e *Engine) dueExpiries(st *step, sl *slot, budget int) (int, error) {
	n := 0
	floor := st.now
	err := e.db.Timers(state.ExpiryTimer, sl.id, sl.expiryFloor, st.now, func(deadline int64, key, _ []byte) (bool, error) {
		if n >= budget {
			floor = min(floor, deadline)
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
	if err == nil {
		sl.expiryFloor = max(sl.expiryFloor, floor)
	}
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
