package blobstore

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/metric"
)

// metrics are shared by every store opened with the same Registerer; the
// target label is the URL scheme (s3, file).
type metrics struct {
	bytes    *prometheus.CounterVec
	objects  *prometheus.CounterVec
	retries  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_deliver_uploaded_bytes_total",
			Help: "Bytes stored by Put (objects that already existed are not counted).",
		}, []string{"target"}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_deliver_uploaded_objects_total",
			Help: "Successful Puts by result: new, or existing (already delivered with the same bytes).",
		}, []string{"target", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_deliver_retries_total",
			Help: "Store requests retried after a transient failure.",
		}, []string{"target"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_deliver_errors_total",
			Help: "Failed Puts by kind: retryable, permanent, conflict.",
		}, []string{"target", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "materializer_deliver_put_duration_seconds",
			Help:    "Duration of Put calls, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, []string{"target"}),
	}
	m.bytes = metric.Register(reg, m.bytes)
	m.objects = metric.Register(reg, m.objects)
	m.retries = metric.Register(reg, m.retries)
	m.errors = metric.Register(reg, m.errors)
	m.duration = metric.Register(reg, m.duration)
	return m
}

func (m *metrics) observePut(target string, st Stored, err error, took time.Duration) {
	m.duration.WithLabelValues(target).Observe(took.Seconds())
	switch {
	case err == nil && st.AlreadyExisted:
		m.objects.WithLabelValues(target, "existing").Inc()
	case err == nil:
		m.objects.WithLabelValues(target, "new").Inc()
		m.bytes.WithLabelValues(target).Add(float64(st.Size))
	case errors.Is(err, ErrConflict):
		m.errors.WithLabelValues(target, "conflict").Inc()
	case errors.Is(err, ErrPermanent):
		m.errors.WithLabelValues(target, "permanent").Inc()
	default:
		m.errors.WithLabelValues(target, "retryable").Inc()
	}
}
