package engine

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the engine. NewMetrics(nil) makes unregistered ones (tests).
type Metrics struct {
	StepDuration       prometheus.Histogram
	StepEvents         prometheus.Counter
	SessionsClosed     prometheus.Counter
	StepErrors         prometheus.Counter
	DiskFull           prometheus.Gauge
	RedeliveryMismatch prometheus.Counter
	OpenFileBytes      prometheus.Gauge
	FilesSealed        prometheus.Counter
	EventToFile        prometheus.Histogram
	// KeyCacheHits, NewKeys and KeyStateReads count the key states a step
	// found in the key cache, those the key filter knew to be new, and
	// those it read from Pebble.
	KeyCacheHits, NewKeys, KeyStateReads prometheus.Counter
	// Rejected counts rejected events by event type and cause
	// (docs/operations.md#metrics).
	Rejected *prometheus.CounterVec

	counters countersCollector
}

// NewMetrics creates the engine's metrics and registers them with reg
// (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		StepDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "materializer_engine_step_duration_seconds", Help: "Time to apply and durably commit one processing step.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		StepEvents:     prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_engine_events_applied_total", Help: "Events applied by processing steps (redelivered ones excluded)."}),
		SessionsClosed: prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_engine_sessions_closed_total", Help: "Sessions closed and emitted to main files."}),
		StepErrors:     prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_engine_step_errors_total", Help: "Processing steps that failed and were retried (disk full, fsync errors)."}),
		DiskFull: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_engine_disk_full", Help: "1 while a step waits for space on the staging disk (consuming is paused meanwhile).",
		}),
		RedeliveryMismatch: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_engine_redelivery_mismatch_total", Help: "Redeliveries that could not be matched exactly against the recent batches (see logs).",
		}),
		OpenFileBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "materializer_engine_open_file_bytes", Help: "Bytes in open (unsealed) staging files."}),
		FilesSealed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_engine_files_sealed_total", Help: "Staging files sealed and queued for delivery."}),
		EventToFile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "materializer_engine_event_to_file_seconds",
			Help:    "Processing time from the arrival of a session's first event until the session closed and its row was written to a staging file.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 16),
		}),
	}
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "materializer_engine_key_state_lookups_total",
		Help: "Key states the engine needed, by where it found them: source=cache (the key cache), new (the key filter knew the key had none) or state (a Pebble read).",
	}, []string{"source"})
	m.KeyCacheHits, m.NewKeys, m.KeyStateReads = lookups.WithLabelValues("cache"), lookups.WithLabelValues("new"), lookups.WithLabelValues("state")
	m.Rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "materializer_events_rejected_total",
		Help: "Events written to rejected files, by cause: parse, utf8, missing_key, ordering, type, required, limit_rows, limit_bytes, limit_field, limit_event, other.",
	}, []string{"event_type", "reason"})
	if reg != nil {
		reg.MustRegister(m.StepDuration, m.StepEvents, m.SessionsClosed, m.StepErrors, m.DiskFull, m.RedeliveryMismatch, m.OpenFileBytes,
			m.FilesSealed, m.EventToFile, lookups, m.Rejected, &m.counters)
	}
	return m
}

// countersCollector exports the counters of every event type from the
// engine's published status, so /metrics and /v1/status never disagree.
type countersCollector struct {
	status atomic.Pointer[func() Status] // set by New
}

var (
	eventsDesc = prometheus.NewDesc("materializer_events_total",
		"Events per outcome (docs/design.md): received = main + superseded + duplicate + correction + rejected + open; redelivered is outside the identity.",
		[]string{"event_type", "outcome"}, nil)
	openDesc = prometheus.NewDesc("materializer_open_sessions",
		"Open sessions (the events counted as open: the best of each session).", []string{"event_type"}, nil)
)

func (c *countersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- eventsDesc
	ch <- openDesc
}

func (c *countersCollector) Collect(ch chan<- prometheus.Metric) {
	status := c.status.Load()
	if status == nil {
		return
	}
	for _, et := range (*status)().EventTypes {
		n := et.Counters
		for _, o := range []struct {
			outcome string
			v       uint64
		}{
			{"received", n.Received}, {"main", n.Main}, {"superseded", n.Superseded}, {"duplicate", n.Duplicate},
			{"correction", n.Correction}, {"rejected", n.Rejected}, {"redelivered", n.Redelivered},
		} {
			ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(o.v), et.Name, o.outcome)
		}
		ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(n.Open), et.Name)
	}
}

// rejectCount keys a step's rejected events.
type rejectCount struct{ eventType, cause string }

// countReject counts one rejected event of the step; the metric is added
// once the step is durable (a failed step is retried and counts again).
func (st *step) countReject(eventType, cause string) {
	if st.rejects == nil {
		st.rejects = map[rejectCount]int{}
	}
	if cause == "" {
		cause = "other"
	}
	st.rejects[rejectCount{eventType, cause}]++
}

func (m *Metrics) observeStep(st *step, d time.Duration) {
	for k, n := range st.rejects {
		m.Rejected.WithLabelValues(k.eventType, k.cause).Add(float64(n))
	}
	if st.events == 0 && len(st.emitWaits) == 0 && len(st.sealed) == 0 && len(st.order) == 0 {
		return
	}
	m.StepDuration.Observe(d.Seconds())
	m.StepEvents.Add(float64(st.events))
	m.SessionsClosed.Add(float64(len(st.emitWaits)))
	m.FilesSealed.Add(float64(len(st.sealed)))
	m.KeyCacheHits.Add(float64(st.cacheHits))
	m.NewKeys.Add(float64(st.newKeys))
	m.KeyStateReads.Add(float64(len(st.order) - st.cacheHits - st.newKeys))
	for _, w := range st.emitWaits {
		m.EventToFile.Observe(time.Duration(w).Seconds())
	}
}
