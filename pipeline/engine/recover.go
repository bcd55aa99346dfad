package engine

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"materializer/pipeline/compact"
	"materializer/pipeline/files"
	"materializer/state"
)

// ErrFingerprint is returned when the state was shaped by another partition
// key or ordering than the config now names.
var ErrFingerprint = errors.New("engine: config does not match the state")

// Fingerprint describes what shapes an event type's state. Tables are not
// part of it: stored events are flattened when their session closes, and a
// file opened under another mapping is sealed at start (see recover).
func Fingerprint(partitionKey []string, orderingKey, ordering string) string {
	return fmt.Sprintf("partition_key=%s\nordering_key=%s\nordering=%s\n", strings.Join(partitionKey, ","), orderingKey, ordering)
}

// start recovers at start-up (recover) and rebuilds the key filter from the
// key states. A failed step's retry (recoverKeeping) keeps the filter: it
// learns a key only once its state is committed (afterCommit), so it still
// holds every key with state, and refilling it would scan every slot's keys
// at every retry.
func (e *Engine) start() error {
	if err := e.recover(); err != nil {
		return err
	}
	e.filter.clear()
	return e.fillFilter(e.slotOrder)
}

// recover rebuilds the engine's memory from the committed state, but for
// the key filter (see start): it is what start-up does, and what a failed
// step does before it is retried. It reads first, decides, then mutates
// (truncating staging files).
func (e *Engine) recover() error {
	e.statusOf = nil // rebuilt from what is recovered
	if e.stage != nil {
		e.stage.Close()
		e.stage = nil
	}
	if e.sessions != nil {
		e.sessions.close()
		e.sessions = nil
	}
	e.cache.clear()
	if err := e.checkFingerprints(); err != nil {
		return err
	}
	if err := e.db.UpgradeFrom1(upgradeSession); err != nil {
		return err
	}
	all, err := e.db.Files()
	if err != nil {
		return err
	}
	outbox, err := e.db.Outbox()
	if err != nil {
		return err
	}
	open, logs := splitFiles(all)
	log, err := openLog(e.log, e.opts.StagingDir, e.db.WriterID(), e.opts.LogSegmentSize, e.db, logs)
	if err != nil {
		return err
	}
	keep := log.names()
	for _, o := range outbox {
		keep = append(keep, o.Name)
	}
	stage, err := files.Open(files.Options{Dir: e.opts.StagingDir, Compression: e.opts.Compression, Level: e.opts.CompressionLevel,
		MaxOpenFiles: e.opts.MaxOpenFiles}, open, keep)
	if err != nil {
		log.close()
		return err
	}
	e.stage, e.sessions = stage, log
	e.seqs = map[state.FileID]uint64{}
	e.forceSeal = map[state.FileID]bool{}
	for _, f := range open {
		if !e.mappingCurrent(f) {
			e.forceSeal[f.ID] = true
		}
	}
	if len(e.forceSeal) > 0 {
		e.log.Warn().Int("files", len(e.forceSeal)).Msg("staging files opened under another table mapping are sealed before new rows are written")
	}
	if err := e.loadSlots(); err != nil {
		return err
	}
	return e.rebuildLog()
}

// fillFilter adds every key with state of the slots to the key filter.
func (e *Engine) fillFilter(slots []*slot) error {
	var mk []byte
	for _, sl := range slots {
		err := e.db.Keys(sl.id, func(key, _ []byte) error {
			mk = append(appendSlot(mk[:0], sl.id), key...)
			e.filter.add(string(mk))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// splitFiles tells the open staging files from the session log's segments.
func splitFiles(all []state.File) (staging, logs []state.File) {
	for _, f := range all {
		if IsSessionLog(f) {
			logs = append(logs, f)
		} else {
			staging = append(staging, f)
		}
	}
	return staging, logs
}

// rebuildLog notes which session records point into which log segment and
// removes the segments none does.
func (e *Engine) rebuildLog() error {
	all, _, err := e.db.Slots()
	if err != nil {
		return err
	}
	byID := make(map[state.Slot]*slot, len(e.slotOrder))
	for _, sl := range e.slotOrder {
		byID[sl.id] = sl
	}
	if err := e.sessions.rebuild(e.db, byID, all); err != nil {
		return err
	}
	return e.sessions.remove(e.sessions.dead())
}

// upgradeSession files an open session of state format 1 under its timer's
// deadline (state.UpgradeFrom1); a closed key's timer was stale.
func upgradeSession(deadline int64, stateV1 []byte, offset string) (newState, head []byte, ok bool, err error) {
	var ks compact.KeyState
	if err := ks.Decode(stateV1); err != nil || !ks.Open {
		return nil, nil, false, err
	}
	ks.Filed = deadline
	return ks.AppendEncoded(nil), append(appendSessionHead(nil, &ks, offset), bodyInline), true, nil
}

// mappingCurrent reports whether an open file was written with the columns
// its table has now.
func (e *Engine) mappingCurrent(f state.File) bool {
	et := e.types[f.ID.EventType]
	if et == nil {
		return false
	}
	if f.ID.Kind == files.KindRejected {
		return true
	}
	for _, t := range et.tables {
		if t.name == f.ID.Table {
			return t.mapping == f.Mapping
		}
	}
	return false
}

func (e *Engine) checkFingerprints() error {
	b := e.db.NewBatch()
	defer b.Close()
	var problems []string
	for _, name := range e.typeNames() {
		et := e.types[name]
		stored, err := e.db.Fingerprint(name)
		if err != nil {
			return err
		}
		switch {
		case stored == "":
			b.PutFingerprint(name, et.Fingerprint)
		case stored != et.Fingerprint:
			problems = append(problems, fmt.Sprintf("event type %s: %s", name, diffFingerprint(stored, et.Fingerprint)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w (restore a checkpoint taken with this config, or use a new data dir and consumer group): %s",
			ErrFingerprint, strings.Join(problems, "; "))
	}
	if b.Empty() {
		return nil
	}
	return b.Commit(true)
}

// diffFingerprint names each line that differs, old and new.
func diffFingerprint(old, cur string) string {
	ol, cl := strings.Split(strings.TrimSpace(old), "\n"), strings.Split(strings.TrimSpace(cur), "\n")
	var out []string
	for i := 0; i < max(len(ol), len(cl)); i++ {
		var o, c string
		if i < len(ol) {
			o = ol[i]
		}
		if i < len(cl) {
			c = cl[i]
		}
		if o != c {
			key, _, _ := strings.Cut(o+c, "=")
			_, ov, _ := strings.Cut(o, "=")
			_, cv, _ := strings.Cut(c, "=")
			out = append(out, fmt.Sprintf("%s was %q in state, config says %q", key, ov, cv))
		}
	}
	return strings.Join(out, ", ")
}

// loadSlots loads every slot of a configured event type: cursor, ring,
// earliest timers, and the event types' counters.
func (e *Engine) loadSlots() error {
	e.slots = map[state.Partition]*slot{}
	e.slotOrder = e.slotOrder[:0]
	e.nextSlot = 0
	all, next, err := e.db.Slots()
	if err != nil {
		return err
	}
	for _, name := range e.typeNames() {
		if err := e.loadSlotsOf(e.types[name], all, next); err != nil {
			return err
		}
	}
	return nil
}

// loadSlotsOf loads one event type's counters and slots from all (the
// slots in state, state.DB.Slots), leaving the other event types' slots
// (and their redelivery progress) alone.
func (e *Engine) loadSlotsOf(et *eventType, all map[state.Partition]state.Slot, next state.Slot) error {
	var err error
	e.nextSlot = max(e.nextSlot, next)
	et.slots = nil
	if et.counters, err = e.db.Counters(et.Name); err != nil {
		return err
	}
	for p, id := range all {
		if p.EventType != et.Name {
			continue
		}
		sl := &slot{id: id, part: p, et: et, sessionFloor: math.MinInt64, expiryFloor: math.MinInt64}
		if sl.cur, err = e.db.Cursor(id); err != nil {
			return err
		}
		if sl.ring, err = e.db.Ring(id); err != nil {
			return err
		}
		if sl.nextSession, err = e.nextTimer(state.SessionTimer, sl); err != nil {
			return err
		}
		if sl.nextExpiry, err = e.nextTimer(state.ExpiryTimer, sl); err != nil {
			return err
		}
		e.slots[p] = sl
		et.slots = append(et.slots, sl)
	}
	sort.Slice(et.slots, func(i, j int) bool { return et.slots[i].id < et.slots[j].id })
	e.slotOrder = append(e.slotOrder, et.slots...)
	return nil
}

func (e *Engine) typeNames() []string {
	names := make([]string, 0, len(e.types))
	for n := range e.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// slotList returns every slot of a configured event type.
func (e *Engine) slotList() []*slot { return e.slotOrder }

// columnsFingerprint identifies a table's column layout.
func columnsFingerprint(cols []state.Column) string {
	var b strings.Builder
	for _, c := range cols {
		b.WriteString(c.Name)
		b.WriteByte(':')
		b.WriteString(c.Type)
		b.WriteByte(',')
	}
	return b.String()
}
