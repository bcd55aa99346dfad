package pipeline

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the engine. NewMetrics(nil) makes unregistered ones (tests).
type Metrics struct {
	StepDuration       prometheus.Histogram
	StepEvents         prometheus.Counter
	SessionsClosed     prometheus.Counter
	StepErrors         prometheus.Counter
	RedeliveryMismatch prometheus.Counter
	OpenFileBytes      prometheus.Gauge
	FilesSealed        prometheus.Counter
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
		RedeliveryMismatch: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_engine_redelivery_mismatch_total", Help: "Redeliveries that could not be matched exactly against the recent batches (see logs).",
		}),
		OpenFileBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "materializer_engine_open_file_bytes", Help: "Bytes in open (unsealed) staging files."}),
		FilesSealed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_engine_files_sealed_total", Help: "Staging files sealed and queued for delivery."}),
	}
	if reg != nil {
		reg.MustRegister(m.StepDuration, m.StepEvents, m.SessionsClosed, m.StepErrors, m.RedeliveryMismatch, m.OpenFileBytes, m.FilesSealed)
	}
	return m
}

func (m *Metrics) observeStep(st *step, d time.Duration) {
	if st.events == 0 && st.closes == 0 && len(st.sealed) == 0 {
		return
	}
	m.StepDuration.Observe(d.Seconds())
	m.StepEvents.Add(float64(st.events))
	m.SessionsClosed.Add(float64(st.closes))
	m.FilesSealed.Add(float64(len(st.sealed)))
}
