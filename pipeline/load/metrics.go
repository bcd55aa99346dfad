package load

import (
	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/metric"
)

// metrics are the loader's materializer_load_* metrics (docs/loader.md).
type metrics struct {
	files       *prometheus.CounterVec
	rows        *prometheus.CounterVec
	badAttempts prometheus.Counter
	outages     prometheus.Counter
	txSeconds   prometheus.Histogram
	pending     prometheus.Gauge
	lag         prometheus.Gauge
	retrying    prometheus.Gauge
	parked      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_load_files_total",
			Help: "Notices handled by result: loaded, skipped (loaded before), parked.",
		}, []string{"result"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_load_rows_total",
			Help: "Rows by what became of them: merged (main and correction rows read), current (inserted into current-state tables), rejected, history.",
		}, []string{"kind"}),
		badAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_load_bad_file_attempts_total",
			Help: "Failed attempts of files that are missing, do not match their notice, or hold data PostgreSQL refuses.",
		}),
		outages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_load_outage_errors_total",
			Help: "Failures to reach PostgreSQL, storage or NATS (retried with backoff, nothing acked).",
		}),
		txSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "materializer_load_transaction_seconds",
			Help:    "Duration of a committed loading transaction (COPY, merge, record, commit).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_load_notices_pending",
			Help: "Notices of the durable consumer not yet acked (waiting or in flight).",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_load_lag_seconds",
			Help: "Age of the oldest notice not yet acked; 0 when none is pending.",
		}),
		retrying: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_load_retrying_files",
			Help: "Bad files waiting for their next attempt.",
		}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_load_parked_files",
			Help: "Rows of materializer_failed_files: notices given up on, to replay (docs/loader.md).",
		}),
	}
	m.files = metric.Register(reg, m.files)
	m.rows = metric.Register(reg, m.rows)
	m.badAttempts = metric.Register(reg, m.badAttempts)
	m.outages = metric.Register(reg, m.outages)
	m.txSeconds = metric.Register(reg, m.txSeconds)
	m.pending = metric.Register(reg, m.pending)
	m.lag = metric.Register(reg, m.lag)
	m.retrying = metric.Register(reg, m.retrying)
	m.parked = metric.Register(reg, m.parked)
	return m
}
