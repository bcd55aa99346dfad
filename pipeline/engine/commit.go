package engine

import (
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
	// Written in key order — best events, then key states (their tags sort
	// so) — because Pebble inserts a batch into its memtable in batch order,
	// and a skiplist insert next to the previous one finds its place in
	// cache-warm nodes.
	sortKeys(st.order)
	for _, ke := range st.order {
		e.putBest(st, ke)
	}
	for _, ke := range st.order {
		e.putKey(st, ke)
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
	for i := range recs {
		st.batch.PutFile(&recs[i])
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

func (e *Engine) putBest(st *step, ke *keyEntry) {
	switch {
	case ke.bestDirty:
		st.batch.PutBest(ke.slot.id, ke.key, ke.bestOffset, ke.best)
	case ke.bestGone:
		st.batch.DeleteBest(ke.slot.id, ke.key)
	}
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
func (e *Engine) roll(st *step) error {
	maxAge := int64(e.opts.RollMaxAge)
	for _, f := range e.stage.Files() {
		due := st.seal[f.ID] || e.forceSeal[f.ID] || st.sealAll == "*" || st.sealAll == f.ID.EventType ||
			f.Length >= e.opts.RollMaxBytes ||
			e.opts.RollMaxRows > 0 && f.Rows >= e.opts.RollMaxRows ||
			maxAge > 0 && st.now-f.Created >= maxAge
		if !due {
			continue
		}
		if err := e.seal(st, f.ID); err != nil {
			return err
		}
	}
	return nil
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
	for _, ke := range st.order {
		switch {
		case ke.dirty:
			e.cache.putEncoded(ke.slotKey, ke.enc, &ke.ref)
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
	e.publishStatus()
}

func (e *Engine) nextTimer(kind state.TimerKind, sl *slot) (int64, error) {
	if e.timerFault != nil {
		if err := e.timerFault(); err != nil {
			return 0, err
		}
	}
	d, ok, err := e.db.NextTimer(kind, sl.id)
	if err != nil || !ok {
		return math.MaxInt64, err
	}
	return d, nil
}
