package pipeline

import (
	"context"

	"materializer/pipeline/engine"
	"materializer/pipeline/nakadi"
	"materializer/pipeline/outbox"
	"materializer/state"
)

// Status is the pipeline's part of GET /v1/status. Every JSON key is
// snake_case.
type Status struct {
	Ready bool `json:"ready"`
	// Drained is true after a drain (POST /v1/drain) until undrained.
	Drained bool `json:"drained"`
	// WriterID is this data dir's writer id: the writer of its files and
	// notices.
	WriterID string `json:"writer_id,omitempty"`
	// StepError is the error of a processing step that fails and is
	// retried (disk_full: it waits for space on the staging disk); empty
	// while steps succeed.
	StepError  string            `json:"step_error,omitempty"`
	DiskFull   bool              `json:"disk_full,omitempty"`
	Memory     MemoryStatus      `json:"memory"`
	EventTypes []EventTypeStatus `json:"event_types"`
}

// EventTypeStatus is one entry of Status.EventTypes.
type EventTypeStatus struct {
	Name            string            `json:"name"`
	State           string            `json:"state"` // consuming | drained | paused | disk full | backpressure | not streaming
	Counters        state.Counters    `json:"counters"`
	Balanced        bool              `json:"counters_balanced"`
	CompactionRatio float64           `json:"compaction_ratio"`
	OpenSessions    uint64            `json:"open_sessions"`
	OpenFiles       int               `json:"open_files"`
	OpenFileBytes   int64             `json:"open_file_bytes"`
	Subscription    string            `json:"subscription_id"`
	StreamID        string            `json:"stream_id,omitempty"`
	Rebalancing     bool              `json:"rebalancing"` // a partition may be moving: /stats polled fast
	LastError       string            `json:"last_error,omitempty"`
	Partitions      []PartitionStatus `json:"partitions"`
	Delivery        outbox.Status     `json:"delivery"`
}

// PartitionStatus is one partition of an EventTypeStatus.
type PartitionStatus struct {
	Partition       string `json:"partition"`
	AppliedOffset   string `json:"applied_offset"`
	CommittedOffset string `json:"committed_offset"`
	Lag             *int64 `json:"lag"` // unconsumed_events from Nakadi /stats; null until known
	EventsReceived  int64  `json:"events_received"`
	OpenFiles       int    `json:"open_files"`
	OpenFileBytes   int64  `json:"open_file_bytes"`
}

// Status returns a snapshot of every event type.
func (p *Pipeline) Status(context.Context) (Status, error) {
	s := Status{Ready: p.Ready(), Drained: p.Drained(), Memory: MemoryStatus{Budget: p.budget, InUse: p.memoryInUse()},
		EventTypes: []EventTypeStatus{}}
	if !p.recovered.Load() {
		return s, nil
	}
	s.WriterID = p.db.WriterID()
	if f := p.eng.Failing(); f != nil {
		s.StepError, s.DiskFull = f.Err, f.DiskFull
	}
	es := p.eng.Status()
	delivery := p.outbox.Status()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, et := range es.EventTypes {
		c := p.consumers[et.Name]
		if c == nil {
			continue // added by a reload that is still starting it
		}
		cs := c.Status()
		s.EventTypes = append(s.EventTypes, EventTypeStatus{
			Name: et.Name, State: p.stateOf(et.Name, c, s.DiskFull), Counters: et.Counters, Balanced: et.Counters.Balanced(),
			CompactionRatio: et.CompactionRatio, OpenSessions: et.Counters.Open, OpenFiles: et.OpenFiles,
			OpenFileBytes: et.OpenFileBytes, Subscription: cs.SubscriptionID, StreamID: cs.StreamID, Rebalancing: cs.Rebalancing,
			LastError: cs.LastError, Delivery: delivery, Partitions: mergePartitions(et.Partitions, cs),
		})
	}
	return s, nil
}

// stateOf names what an event type's consumer does; diskFull: a step
// waits for space on the staging disk. Called with p.mu held.
func (p *Pipeline) stateOf(name string, c *nakadi.Consumer, diskFull bool) string {
	switch {
	case p.drained:
		return "drained"
	case p.paused[name]:
		return "paused"
	case p.bp.engaged() && diskFull:
		return "disk full"
	case p.bp.engaged():
		return "backpressure"
	case c.Streaming():
		return "consuming"
	}
	return "not streaming"
}

// mergePartitions joins the engine's view (applied offsets, files) with the
// consumer's (committed offsets, lag) per partition.
func mergePartitions(applied []engine.PartitionStatus, cs nakadi.Status) []PartitionStatus {
	byName := map[string]*PartitionStatus{}
	var order []string
	get := func(p string) *PartitionStatus {
		if ps, ok := byName[p]; ok {
			return ps
		}
		ps := &PartitionStatus{Partition: p}
		byName[p] = ps
		order = append(order, p)
		return ps
	}
	for _, a := range applied {
		ps := get(a.Partition)
		ps.AppliedOffset, ps.OpenFiles, ps.OpenFileBytes = a.AppliedOffset, a.OpenFiles, a.OpenFileBytes
	}
	for _, p := range cs.Partitions {
		ps := get(p.Partition)
		ps.CommittedOffset = p.CommittedOffset
		ps.EventsReceived = p.EventsReceived
		if p.UnconsumedEvents != nil {
			v := *p.UnconsumedEvents
			ps.Lag = &v
		}
	}
	out := make([]PartitionStatus, 0, len(order))
	for _, p := range order {
		out = append(out, *byName[p])
	}
	return out
}
