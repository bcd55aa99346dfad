package engine

import (
	"slices"

	"materializer/pipeline/nakadi"
	"materializer/state"
)

// Status is a snapshot of the engine, published after every step.
type Status struct {
	EventTypes []EventTypeStatus `json:"event_types"`
}

// EventTypeStatus is one event type's part of Status.
type EventTypeStatus struct {
	Name     string         `json:"name"`
	Counters state.Counters `json:"counters"`
	// CompactionRatio is events received per event written to main or
	// correction files (0 until something was written).
	CompactionRatio float64           `json:"compaction_ratio"`
	OpenFiles       int               `json:"open_files"`
	OpenFileBytes   int64             `json:"open_file_bytes"`
	Partitions      []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one partition's part of EventTypeStatus.
type PartitionStatus struct {
	Partition     string `json:"partition"`
	AppliedOffset string `json:"applied_offset"`
	OpenFiles     int    `json:"open_files"`
	OpenFileBytes int64  `json:"open_file_bytes"`
}

// Status returns the latest snapshot.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// KeyCacheBytes is the memory the key cache holds (as of the last step).
func (e *Engine) KeyCacheBytes() int64 { return e.keyCacheBytes.Load() }

// OpenFileBytes is the size of all open staging files (part of the staged
// bytes that backpressure watches).
func (e *Engine) OpenFileBytes() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status.openFileBytes()
}

// publishStatus publishes the status after step st: only the event types
// whose counters, cursors or open files it changed are rebuilt (with a
// thousand event types, rebuilding all in every step would cost more than
// the step). st nil rebuilds everything: at start, after a recovery or a
// reload.
func (e *Engine) publishStatus(st *step) {
	if e.stage == nil {
		return // between a failed recovery and its retry
	}
	e.keyCacheBytes.Store(e.cache.inUse())
	dirty := map[string]bool{}
	if st == nil || e.statusOf == nil {
		e.statusOf, e.statusNames, e.openOf = map[string]EventTypeStatus{}, e.typeNames(), map[string]map[state.FileID]int64{}
		e.stage.Each(func(f *state.File) { e.setOpen(f) })
		for name := range e.types {
			dirty[name] = true
		}
	} else {
		for et := range st.types {
			dirty[et.Name] = true
		}
		for sl := range st.slots {
			dirty[sl.part.EventType] = true
		}
		for i := range st.written {
			e.setOpen(&st.written[i])
			dirty[st.written[i].ID.EventType] = true
		}
		for _, o := range st.sealed {
			delete(e.openOf[o.ID.EventType], o.ID)
			dirty[o.ID.EventType] = true
		}
	}
	for name := range dirty {
		if et := e.types[name]; et != nil {
			e.statusOf[name] = e.typeStatus(et)
		}
	}
	s := Status{EventTypes: make([]EventTypeStatus, 0, len(e.statusNames))}
	for _, name := range e.statusNames {
		s.EventTypes = append(s.EventTypes, e.statusOf[name])
	}
	e.mu.Lock()
	e.status = s
	e.mu.Unlock()
	e.opts.Metrics.OpenFileBytes.Set(float64(s.openFileBytes()))
}

func (e *Engine) setOpen(f *state.File) {
	m := e.openOf[f.ID.EventType]
	if m == nil {
		m = map[state.FileID]int64{}
		e.openOf[f.ID.EventType] = m
	}
	m[f.ID] = f.Length
}

// typeStatus builds one event type's status.
func (e *Engine) typeStatus(et *eventType) EventTypeStatus {
	type count struct {
		files int
		bytes int64
	}
	byPart := map[string]count{}
	for id, n := range e.openOf[et.Name] {
		c := byPart[id.Partition]
		byPart[id.Partition] = count{c.files + 1, c.bytes + n}
	}
	ets := EventTypeStatus{Name: et.Name, Counters: et.counters}
	if out := et.counters.Main + et.counters.Correction; out > 0 {
		ets.CompactionRatio = float64(et.counters.Received) / float64(out)
	}
	for _, sl := range et.slots {
		c := byPart[sl.part.Partition]
		ets.Partitions = append(ets.Partitions, PartitionStatus{
			Partition: sl.part.Partition, AppliedOffset: sl.cur.Offset, OpenFiles: c.files, OpenFileBytes: c.bytes,
		})
		ets.OpenFiles += c.files
		ets.OpenFileBytes += c.bytes
	}
	slices.SortFunc(ets.Partitions, func(a, b PartitionStatus) int { return nakadi.ComparePartitions(a.Partition, b.Partition) })
	return ets
}

// openFileBytes is the size of every open staging file.
func (s Status) openFileBytes() int64 {
	var n int64
	for _, et := range s.EventTypes {
		n += et.OpenFileBytes
	}
	return n
}
