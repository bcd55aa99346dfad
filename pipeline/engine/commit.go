package engine

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"materializer/internal/failpoint"
	"materializer/pipeline/files"
	"materializer/state"
)

// commit writes the step's rows, seals what must roll, and commits the
// step's state batch synced; then it marks the step's Nakadi batches durable.
func (e *Engine) commit(st *step) error {
	// Written in key order — key states, then session records (their tags
	// sort so; sessions by deadline) — because Pebble inserts a batch into
	// its memtable in batch order, and a skiplist insert next to the
	// previous one finds its place in cache-warm nodes.
	sortKeys(st.order)
	for _, ke := range st.order {
		e.putKey(st, ke)
	}
	if err := e.putSessions(st); err != nil {
		return err
	}
	for et := range st.types {
		if invariants && !et.counters.Balanced() {
			panic(fmt.Sprintf("engine: counters of %s out of balance: %+v", et.Name, et.counters))
		}
		st.batch.PutCounters(et.Name, et.counters)
	}
	for sl := range st.slots {
		st.batch.PutCursor(sl.id, sl.cur)
	}
	recs, err := e.stage.Flush()
	if err != nil {
		return err
	}
	st.written = recs
	logs, err := e.sessions.flush()
	if err != nil {
		return err
	}
	for _, rs := range [][]state.File{recs, logs} {
		for i := range rs {
			st.batch.PutFile(&rs[i])
		}
	}
	if err := e.roll(st); err != nil {
		return err
	}
	if st.batch.Empty() && len(st.durable) == 0 {
		return nil
	}
	failpoint.Inject(failpoint.BeforeStateCommit)
	if err := st.batch.Commit(true); err != nil {
		return fmt.Errorf("%w: %w", errStateCommit, err)
	}
	failpoint.Inject(failpoint.AfterStateCommit)
	e.afterCommit(st)
	return nil
}

// sortKeys sorts key entries by slot key. It compares the keys' first 16
// bytes as two integers held beside the pointers (most keys differ there),
// and whole keys only on a tie.
func sortKeys(order []*keyEntry) {
	type sortKey struct {
		a, b uint64
		ke   *keyEntry
	}
	word := func(s string) uint64 {
		var w [8]byte
		copy(w[:], s)
		return binary.BigEndian.Uint64(w[:])
	}
	keys := make([]sortKey, len(order))
	for i, ke := range order {
		keys[i] = sortKey{a: word(ke.slotKey), b: word(ke.slotKey[min(8, len(ke.slotKey)):]), ke: ke}
	}
	slices.SortFunc(keys, func(x, y sortKey) int {
		if c := cmp.Compare(x.a, y.a); c != 0 {
			return c
		}
		if c := cmp.Compare(x.b, y.b); c != 0 {
			return c
		}
		return strings.Compare(x.ke.slotKey, y.ke.slotKey)
	})
	for i := range keys {
		order[i] = keys[i].ke
	}
}

// putSessions writes the record of every open session whose best event
// changed in this step (opened or replaced: the event goes to the session
// log) or that moved to a later deadline, filed under its deadline, in
// (slot, deadline, key) order. A record already at that deadline is
// overwritten.
func (e *Engine) putSessions(st *step) error {
	var open []*keyEntry
	for _, ke := range st.order {
		if (ke.bestDirty || ke.moved) && ke.st.Open {
			open = append(open, ke)
		}
	}
	slices.SortFunc(open, func(a, b *keyEntry) int {
		return cmp.Or(cmp.Compare(a.slot.id, b.slot.id), cmp.Compare(a.st.Filed, b.st.Filed), bytes.Compare(a.key, b.key))
	})
	for _, ke := range open {
		offset, body := ke.bodyOffset, ke.body
		if ke.bestDirty {
			loc, err := e.sessions.append(ke.best)
			if err != nil {
				return err
			}
			offset, st.body = ke.bestOffset, appendLocBody(st.body[:0], loc)
			body = st.body
		}
		if _, loc, inLog, err := parseBody(body); err != nil {
			return err
		} else if inLog {
			st.filed = append(st.filed, filedNote{loc.seg, ke.slot, ke.st.Filed})
		}
		st.head = appendSessionHead(st.head[:0], &ke.st, offset)
		st.batch.PutSession(ke.slot.id, ke.st.Filed, ke.key, st.head, body)
	}
	return nil
}

// filedNote: a record of slot filed under deadline points into seg.
type filedNote struct {
	seg      uint64
	slot     *slot
	deadline int64
}

func (e *Engine) putKey(st *step, ke *keyEntry) {
	sl := ke.slot
	if !ke.dirty {
		return
	}
	if !ke.st.HasHi && !ke.st.Open {
		st.batch.DeleteKeyState(sl.id, ke.key)
		ke.enc = nil
		return
	}
	// Encoded once, into the step's arena: the batch and, after the commit,
	// the key cache take the same bytes.
	n := len(st.encoded)
	st.encoded = ke.st.AppendEncoded(st.encoded)
	ke.enc = st.encoded[n:len(st.encoded):len(st.encoded)]
	st.batch.PutKeyState(sl.id, ke.key, ke.enc)
}

// roll seals every open file that reached its size, row count or age, or
// that the step must seal (flush, lost partition, changed mapping). A sealed
// file's outbox entry is written in the same batch that removes its record.
//
// Only the files the step wrote can have reached a size or row
// count; every open file is looked at when the step seals all of an event
// type, and otherwise at most ageChecks times per roll_max_age (ages, and
// limits lowered by a reload): with tens of thousands of open files, a look
// at each in every step would cost more than the step.
func (e *Engine) roll(st *step) error {
	due := map[state.FileID]bool{}
	for id, seal := range st.seal {
		due[id] = seal
	}
	for id := range e.forceSeal {
		due[id] = true
	}
	for i := range st.written {
		if e.full(&st.written[i]) {
			due[st.written[i].ID] = true
		}
	}
	maxAge := int64(e.opts.RollMaxAge)
	every := int64(time.Second)
	if maxAge > 0 {
		every = min(every, maxAge/ageChecks)
	}
	if st.sealAll != "" || st.now-e.rollChecked >= every || st.now < e.rollChecked {
		e.rollChecked = st.now
		e.stage.Each(func(f *state.File) {
			if st.sealAll == "*" || st.sealAll == f.ID.EventType || e.full(f) || maxAge > 0 && st.now-f.Created >= maxAge {
				due[f.ID] = true
			}
		})
	}
	var seal []state.File
	for id, ok := range due {
		if f, open := e.stage.Lookup(id); ok && open {
			seal = append(seal, f)
		}
	}
	slices.SortFunc(seal, func(a, b state.File) int { return strings.Compare(a.Name, b.Name) })
	for _, f := range seal {
		if err := e.seal(st, f.ID); err != nil {
			return err
		}
	}
	return nil
}

// ageChecks is how often, per roll_max_age, every open file's age is
// looked at.
const ageChecks = 10

// full reports whether an open file reached its size or row count.
func (e *Engine) full(f *state.File) bool {
	return f.Length >= e.opts.RollMaxBytes || e.opts.RollMaxRows > 0 && f.Rows >= e.opts.RollMaxRows
}

// seal seals the open file of id in this step: the batch removes its record
// and adds its outbox entry.
func (e *Engine) seal(st *step, id state.FileID) error {
	rec, err := e.stage.Seal(id)
	if err != nil {
		return err
	}
	o := state.Outbox{File: rec, Key: files.ObjectKey(&rec, time.Unix(0, st.now)), Sealed: st.now}
	st.batch.DeleteFile(rec.ID)
	st.batch.PutOutbox(&o)
	st.sealed = append(st.sealed, o)
	return nil
}

// afterCommit updates what depends on the committed state and tells the
// consumers and the deliverer. It cannot fail: the step is committed, and a
// failure here would have it applied again (a timer that cannot be read is
// due at once instead, see earliest).
func (e *Engine) afterCommit(st *step) {
	for sl, scan := range st.timers {
		if scan&scannedSessions != 0 {
			sl.nextSession = e.earliest(state.SessionTimer, sl)
		}
		if scan&scannedExpiries != 0 {
			sl.nextExpiry = e.earliest(state.ExpiryTimer, sl)
		}
	}
	for _, o := range st.sealed {
		delete(e.forceSeal, o.ID)
	}
	for _, n := range st.filed {
		e.sessions.filed(n.seg, n.slot, n.deadline)
	}
	if err := e.sessions.remove(e.sessions.dead()); err != nil {
		// The segment's file stays; recovery removes it as a stray.
		e.sessions.warn(err)
	}
	for _, ke := range st.order {
		switch {
		case ke.dirty:
			e.cache.putEncoded(ke.slotKey, ke.enc, &ke.ref)
			if ke.enc != nil && !ke.ref.found() { // not from the cache: maybe new
				e.filter.add(ke.slotKey)
			}
		case !ke.ref.found(): // loaded from Pebble: cache it
			e.cache.put(ke.slotKey, &ke.st)
		}
	}
	e.encoded = st.encoded // the cache copied what it keeps
	// Newest first. The consumer may commit between two calls, and commits a
	// cursor once its batch and every earlier one are durable: marking the
	// oldest last leaves the step's newest batch of each partition (a ring
	// boundary) as the only cursor it can commit, never that of a held
	// batch released with it, which the ring does not know (redelivery.go).
	for i := len(st.durable) - 1; i >= 0; i-- {
		b := st.durable[i]
		switch et := e.types[b.Cursor.EventType]; {
		case et == nil:
			b.Durable() // not configured: committed without processing, by its own consumer
		case et.Durable != nil:
			et.Durable(b)
		}
	}
	if len(st.sealed) > 0 && e.opts.Sealed != nil {
		e.opts.Sealed()
	}
	e.publishStatus(st)
}

func (e *Engine) nextTimer(kind state.TimerKind, sl *slot) (int64, error) {
	if e.timerFault != nil {
		if err := e.timerFault(); err != nil {
			return 0, err
		}
	}
	from := sl.sessionFloor
	if kind == state.ExpiryTimer {
		from = sl.expiryFloor
	}
	d, ok, err := e.db.NextTimer(kind, sl.id, from)
	if err != nil || !ok {
		return math.MaxInt64, err
	}
	return d, nil
}
