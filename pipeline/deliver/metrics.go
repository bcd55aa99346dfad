package deliver

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	if reg == nil {
		return m
	}
	m.bytes = register(reg, m.bytes)
	m.objects = register(reg, m.objects)
	m.retries = register(reg, m.retries)
	m.errors = register(reg, m.errors)
	m.duration = register(reg, m.duration)
	return m
}

// register registers c, or returns the collector registered before under
// the same name (a second store on the same registry shares it).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a name clash with another collector type is a programming error
	}
	return c
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
