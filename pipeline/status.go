package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"materializer/pipeline"
	"materializer/pipeline/nakadi"
	"materializer/state"
)

// eventTypeStatus is one entry of GET /v1/status's event_types (DESIGN.md §9).
type eventTypeStatus struct {
	Name            string                  `json:"name"`
	State           string                  `json:"state"` // consuming | paused | backpressure | not streaming
	Counters        state.Counters          `json:"counters"`
	Balanced        bool                    `json:"counters_balanced"`
	CompactionRatio float64                 `json:"compaction_ratio"`
	OpenSessions    uint64                  `json:"open_sessions"`
	OpenFiles       int                     `json:"open_files"`
	OpenFileBytes   int64                   `json:"open_file_bytes"`
	Subscription    string                  `json:"subscription_id"`
	StreamID        string                  `json:"stream_id,omitempty"`
	LastError       string                  `json:"last_error,omitempty"`
	Partitions      []partitionStatus       `json:"partitions"`
	Delivery        pipeline.DeliveryStatus `json:"delivery"`
}

type partitionStatus struct {
	Partition       string `json:"partition"`
	AppliedOffset   string `json:"applied_offset"`
	CommittedOffset string `json:"committed_offset"`
	Lag             *int64 `json:"lag"` // unconsumed_events from Nakadi /stats; null until known
	EventsReceived  int64  `json:"events_received"`
	OpenFiles       int    `json:"open_files"`
	OpenFileBytes   int64  `json:"open_file_bytes"`
}

// EventTypes is the event_types list of /v1/status.
func (e *engine) EventTypes(context.Context) (any, error) {
	if e.eng == nil {
		return []eventTypeStatus{}, nil
	}
	es := e.eng.Status()
	delivery := e.deliverer.Status()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]eventTypeStatus, 0, len(es.EventTypes))
	for _, et := range es.EventTypes {
		c := e.consumers[et.Name]
		cs := c.Status()
		s := eventTypeStatus{
			Name: et.Name, State: e.stateOf(et.Name, c), Counters: et.Counters, Balanced: et.Counters.Balanced(),
			CompactionRatio: et.CompactionRatio, OpenSessions: et.Counters.Open, OpenFiles: et.OpenFiles,
			OpenFileBytes: et.OpenFileBytes, Subscription: cs.SubscriptionID, StreamID: cs.StreamID,
			LastError: cs.LastError, Delivery: delivery,
		}
		s.Partitions = mergePartitions(et.Partitions, cs)
		out = append(out, s)
	}
	return out, nil
}

func (e *engine) stateOf(name string, c *nakadi.Consumer) string {
	switch {
	case e.paused[name]:
		return "paused"
	case e.pressured:
		return "backpressure"
	case c.Streaming():
		return "consuming"
	}
	return "not streaming"
}

// mergePartitions joins the engine's view (applied offsets, files) with the
// consumer's (committed offsets, lag) per partition.
func mergePartitions(applied []pipeline.PartitionStatus, cs nakadi.Status) []partitionStatus {
	byName := map[string]*partitionStatus{}
	var order []string
	get := func(p string) *partitionStatus {
		if ps, ok := byName[p]; ok {
			return ps
		}
		ps := &partitionStatus{Partition: p}
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
	out := make([]partitionStatus, 0, len(order))
	for _, p := range order {
		out = append(out, *byName[p])
	}
	return out
}

// backpressure pauses every consumer while staged bytes (open staging files
// plus sealed files waiting for delivery) exceed storage.max_staged_bytes,
// and resumes them below 80 % of it. Durable cursors keep being committed
// while paused; nothing is dropped.
func (e *engine) backpressure(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		limit := e.maxStaged.Load()
		low := limit / 10 * 8
		staged := e.eng.OpenFileBytes() + e.deliverer.StagedBytes()
		e.bp.staged.Set(float64(staged))
		e.mu.Lock()
		switch {
		case !e.pressured && staged > limit:
			e.pressured = true
			e.bp.active.Set(1)
			for _, c := range e.consumers {
				c.Pause()
			}
			e.plog.Warn().Int64("staged_bytes", staged).Int64("max_staged_bytes", limit).
				Msg("backpressure: staged files exceed max_staged_bytes; consuming paused until delivery catches up")
			// Open files count as staged but cannot be delivered until they
			// are sealed: seal them, or a pause could outlast roll_max_age.
			go func() {
				if _, err := e.eng.SealAll(ctx); err != nil && ctx.Err() == nil {
					e.plog.Error().Err(err).Msg("backpressure: sealing the open files failed")
				}
			}()
		case e.pressured && staged < low:
			e.pressured = false
			e.bp.active.Set(0)
			for name, c := range e.consumers {
				if !e.paused[name] {
					c.Resume()
				}
			}
			e.plog.Info().Int64("staged_bytes", staged).Msg("backpressure released: consuming again")
		}
		e.mu.Unlock()
	}
}

type backpressureMetrics struct {
	staged, active prometheus.Gauge
}

func newBackpressureMetrics(reg prometheus.Registerer) *backpressureMetrics {
	m := &backpressureMetrics{
		staged: prometheus.NewGauge(prometheus.GaugeOpts{Name: "materializer_staged_bytes", Help: "Bytes of staging files, open and sealed, not yet delivered."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "materializer_backpressure", Help: "1 while consuming is paused because staged bytes exceed max_staged_bytes."}),
	}
	if reg != nil {
		reg.MustRegister(m.staged, m.active)
	}
	return m
}
