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

func (e *Engine) publishStatus() {
	if e.stage == nil {
		return // between a failed recovery and its retry
	}
	e.keyCacheBytes.Store(e.cache.inUse())
	type key struct{ et, p string }
	files := map[key][2]int64{}
	for _, f := range e.stage.Files() {
		k := key{f.ID.EventType, f.ID.Partition}
		v := files[k]
		files[k] = [2]int64{v[0] + 1, v[1] + f.Length}
	}
	s := Status{}
	for _, name := range e.typeNames() {
		et := e.types[name]
		ets := EventTypeStatus{Name: name, Counters: et.counters}
		if out := et.counters.Main + et.counters.Correction; out > 0 {
			ets.CompactionRatio = float64(et.counters.Received) / float64(out)
		}
		for _, sl := range et.slots {
			f := files[key{name, sl.part.Partition}]
			ets.Partitions = append(ets.Partitions, PartitionStatus{
				Partition: sl.part.Partition, AppliedOffset: sl.cur.Offset, OpenFiles: int(f[0]), OpenFileBytes: f[1],
			})
			ets.OpenFiles += int(f[0])
			ets.OpenFileBytes += f[1]
		}
		slices.SortFunc(ets.Partitions, func(a, b PartitionStatus) int { return nakadi.ComparePartitions(a.Partition, b.Partition) })
		s.EventTypes = append(s.EventTypes, ets)
	}
	e.mu.Lock()
	e.status = s
	e.mu.Unlock()
	e.opts.Metrics.OpenFileBytes.Set(float64(s.openFileBytes()))
}

// openFileBytes is the size of every open staging file.
func (s Status) openFileBytes() int64 {
	var n int64
	for _, et := range s.EventTypes {
		n += et.OpenFileBytes
	}
	return n
}
