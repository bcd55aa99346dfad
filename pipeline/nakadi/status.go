package nakadi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status is a snapshot for /v1/status. It holds no secrets.
type Status struct {
	SubscriptionID string    `json:"subscription_id"`
	EventTypes     []string  `json:"event_types"`
	StreamID       string    `json:"stream_id,omitempty"`
	Streaming      bool      `json:"streaming"`
	Paused         bool      `json:"paused"`
	Fatal          bool      `json:"fatal"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
	Reconnects     int64     `json:"reconnects"`
	Uncommitted    int       `json:"uncommitted_events"`
	// Rebalancing is true while a partition may be moving and /stats is
	// polled every StatsFastInterval.
	Rebalancing bool              `json:"rebalancing"`
	Partitions  []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one partition of a Status. The /stats fields are as of
// the last poll.
type PartitionStatus struct {
	EventType       string `json:"event_type"`
	Partition       string `json:"partition"`
	ReceivedOffset  string `json:"received_offset,omitempty"`
	CommittedOffset string `json:"committed_offset,omitempty"` // last committed by this consumer
	EventsReceived  int64  `json:"events_received"`
	BytesReceived   int64  `json:"bytes_received"`
	KeepAlives      int64  `json:"keep_alives"`
	// Reconnects counts the streams the partition was received on, minus one.
	Reconnects    int64         `json:"reconnects"`
	CommitLatency time.Duration `json:"commit_latency_ns"` // receipt to commit accepted, last commit

	UnconsumedEvents   *int64   `json:"unconsumed_events,omitempty"`
	ConsumerLagSeconds *float64 `json:"consumer_lag_seconds,omitempty"`
	State              string   `json:"state,omitempty"` // assigned | reassigning | unassigned
	AssignedStream     string   `json:"assigned_stream_id,omitempty"`
	AssignmentType     string   `json:"assignment_type,omitempty"`
}

// partStat is the live state behind a PartitionStatus. Guarded by c.mu.
type partStat struct {
	received, committed       string
	events, bytes, keepAlives int64
	streams                   int64
	lastStream                string
	commitLatency             time.Duration
	unconsumed                *int64
	lag                       *float64
	state, assigned, atype    string
}

// partStat returns (creating) a partition's state. Called with c.mu held.
func (c *Consumer) partStat(k PartitionKey) *partStat {
	ps := c.parts[k]
	if ps == nil {
		ps = &partStat{}
		c.parts[k] = ps
	}
	return ps
}

// Status returns a snapshot of the consumer.
func (c *Consumer) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{SubscriptionID: c.subID, EventTypes: slices.Clone(c.cfg.EventTypes), Streaming: c.cur != nil,
		Paused: c.paused, Fatal: c.fatal, LastError: c.lastErr, LastErrorAt: c.lastErrAt,
		Reconnects: max(c.opened-1, 0), Uncommitted: c.tr.uncommittedEvents(), Rebalancing: c.moves.fast}
	if c.cur != nil {
		s.StreamID = c.cur.id
	}
	for k, ps := range c.parts {
		s.Partitions = append(s.Partitions, PartitionStatus{
			EventType: k.EventType, Partition: k.Partition, ReceivedOffset: ps.received, CommittedOffset: ps.committed,
			EventsReceived: ps.events, BytesReceived: ps.bytes, KeepAlives: ps.keepAlives, Reconnects: max(ps.streams-1, 0),
			CommitLatency: ps.commitLatency, UnconsumedEvents: ps.unconsumed, ConsumerLagSeconds: ps.lag,
			State: ps.state, AssignedStream: ps.assigned, AssignmentType: ps.atype,
		})
	}
	slices.SortFunc(s.Partitions, func(a, b PartitionStatus) int {
		if a.EventType != b.EventType {
			return strings.Compare(a.EventType, b.EventType)
		}
		return ComparePartitions(a.Partition, b.Partition)
	})
	return s
}

// pollStats updates lag and assignment, declares partitions lost that
// /stats shows assigned to a stream that is not ours, and tells the move
// watch (moves.go) what it saw.
func (c *Consumer) pollStats(ctx context.Context) error {
	c.mu.Lock()
	subID, cur, seq := c.subID, c.cur, c.firstSeq
	c.mu.Unlock()
	if subID == "" {
		return nil
	}
	items, err := c.api.stats(ctx, subID)
	if err != nil {
		return err
	}
	items = c.validStats(items)
	var lost []lostPart
	partitions, reassigning := 0, false
	view := map[PartitionKey]string{}
	c.mu.Lock()
	for _, et := range items {
		for _, p := range et.Partitions {
			partitions++
			key := PartitionKey{et.EventType, p.Partition}
			ps := c.partStat(key)
			ps.unconsumed, ps.lag, ps.state, ps.assigned, ps.atype = p.UnconsumedEvents, p.ConsumerLag, p.State, p.StreamID, p.AssignmentType
			view[key] = p.State + " " + p.StreamID
			reassigning = reassigning || p.State == "reassigning"
			if sid := c.owner[key]; c.takenAway(sid, key, p.State, p.StreamID, cur, seq) {
				lost = append(lost, lostPart{streamPart{sid, key}, p.StreamID})
			}
		}
	}
	c.observeStats(view, reassigning)
	warn := !c.windowWarn && partitions*c.cfg.BatchLimit > c.cfg.MaxUncommittedEvents
	c.windowWarn = c.windowWarn || warn
	c.mu.Unlock()
	c.exportStats(items)
	if warn {
		c.log.Warn().Int("max_uncommitted_events", c.cfg.MaxUncommittedEvents).Int("batch_limit", c.cfg.BatchLimit).
			Int("partitions", partitions).Msg("max_uncommitted_events is below batch_limit × partitions: batches will be small")
	}
	for _, l := range lost {
		c.partitionLost(l.stream, l.key, l.owner, "stats shows the partition assigned to another stream")
	}
	return nil
}

// validStats drops the partitions of a /stats answer whose event type or
// partition is not a valid name (names.go): they are counted and logged as
// errors, never used as labels or keys.
func (c *Consumer) validStats(items []statsEventType) []statsEventType {
	for i := range items {
		ps := items[i].Partitions[:0]
		for _, p := range items[i].Partitions {
			if err := checkNames(Cursor{EventType: items[i].EventType, Partition: p.Partition}); err != nil {
				c.noteErr(fmt.Errorf("stats: %w", err))
				continue
			}
			ps = append(ps, p)
		}
		items[i].Partitions = ps
	}
	return items
}

// lostPart is a partition /stats shows taken away, with its new owner.
type lostPart struct {
	streamPart
	owner string
}

// newOwner is the stream /stats last named for a partition that left
// stream sid, "" when /stats named none of another stream.
func (c *Consumer) newOwner(key PartitionKey, sid string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.parts[key]
	if ps == nil || ps.state != "assigned" || ps.assigned == sid || (c.cur != nil && ps.assigned == c.cur.id) {
		return ""
	}
	return ps.assigned
}

// takenAway decides whether /stats shows a partition, last handed out on
// stream sid, now owned by a stream that is not ours. A partition first
// seen on the current stream after the /stats request started is not
// judged by that (stale) answer. Called with c.mu held.
func (c *Consumer) takenAway(sid string, key PartitionKey, state, assigned string, cur *streamState, seq uint64) bool {
	if sid == "" || state != "assigned" || assigned == "" || assigned == sid {
		return false
	}
	if cur != nil && assigned == cur.id {
		return false
	}
	if cur != nil && sid == cur.id {
		first, ok := cur.first[key]
		return ok && first <= seq
	}
	return true
}

// exportStats sets the lag gauges.
func (c *Consumer) exportStats(items []statsEventType) {
	for _, et := range items {
		for _, p := range et.Partitions {
			l := []string{et.EventType, p.Partition}
			if p.UnconsumedEvents != nil {
				c.m.unconsumed.WithLabelValues(l...).Set(float64(*p.UnconsumedEvents))
			}
			if p.ConsumerLag != nil {
				c.m.lagSeconds.WithLabelValues(l...).Set(*p.ConsumerLag)
			}
		}
	}
}
