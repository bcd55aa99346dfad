package notify

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	published  *prometheus.CounterVec
	errors     *prometheus.CounterVec
	retries    prometheus.Counter
	duration   prometheus.Histogram
	connected  prometheus.Gauge
	reconnects prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_notify_published_total",
			Help: "Notices acknowledged by JetStream, by result: new, or duplicate (Msg-Id seen before).",
		}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_notify_publish_errors_total",
			Help: "Failed Publish calls by kind: unavailable, permanent.",
		}, []string{"kind"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_notify_publish_retries_total",
			Help: "Notices sent again with the same Msg-Id after an ack timeout or a missing stream.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "materializer_notify_publish_duration_seconds",
			Help:    "Duration of Publish calls until the JetStream ack, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 12),
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_notify_connected",
			Help: "1 while connected to a NATS server.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "materializer_notify_reconnects_total",
			Help: "Reconnections to NATS after a lost connection.",
		}),
	}
	if reg != nil {
		m.published = register(reg, m.published)
		m.errors = register(reg, m.errors)
		m.retries = register(reg, m.retries)
		m.duration = register(reg, m.duration)
		m.connected = register(reg, m.connected)
		m.reconnects = register(reg, m.reconnects)
	}
	return m
}

// register registers c or returns the collector already registered under
// its name (a Publisher re-created on the same registry shares it).
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
