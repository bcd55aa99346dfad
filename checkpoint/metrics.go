package checkpoint

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	pause          prometheus.Histogram
	duration       prometheus.Histogram
	last           prometheus.Gauge
	bytes          prometheus.Gauge
	failures       prometheus.Counter
	remoteFailures prometheus.Counter
	uploadedBytes  prometheus.Counter
	uploadedFiles  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pause: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "materializer_checkpoint_pause_seconds", Help: "How long taking a checkpoint paused ingestion.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "materializer_checkpoint_duration_seconds", Help: "Time to take a checkpoint, remote copy included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_checkpoint_last_success_timestamp_seconds", Help: "When the newest local checkpoint was taken.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_checkpoint_size_bytes", Help: "Size of the newest checkpoint (sum of its files).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_checkpoint_failures_total", Help: "Checkpoints that failed.",
		}),
		remoteFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_checkpoint_remote_failures_total", Help: "Remote copies of checkpoints that failed.",
		}),
		uploadedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_checkpoint_uploaded_bytes_total", Help: "Bytes sent to the remote checkpoint store.",
		}),
		uploadedFiles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_checkpoint_uploaded_files_total", Help: "Objects sent to the remote checkpoint store.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.pause, m.duration, m.last, m.bytes, m.failures, m.remoteFailures, m.uploadedBytes, m.uploadedFiles)
	}
	return m
}
