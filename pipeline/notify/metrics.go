package notify

import (
	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/metric"
)

type metrics struct {
	published  *prometheus.CounterVec
	errors     *prometheus.CounterVec
	retries    prometheus.Counter
	duration   prometheus.Histogram
	connected  prometheus.Gauge
	reconnects prometheus.Counter

	streamReplicas prometheus.Gauge
	streamMismatch *prometheus.GaugeVec
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
		streamReplicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "materializer_notify_stream_replicas",
			Help: "Replicas of the notice stream, as found or created at the last check (0: not checked yet).",
		}),
		streamMismatch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "materializer_notify_stream_mismatch",
			Help: "1 while the existing notice stream differs from the notify settings, by setting: replicas, duplicate_window, storage, retention (used, reported) or subjects, sealed, no_ack, mirror (refused: notices wait).",
		}, []string{"setting"}),
	}
	m.published = metric.Register(reg, m.published)
	m.errors = metric.Register(reg, m.errors)
	m.retries = metric.Register(reg, m.retries)
	m.duration = metric.Register(reg, m.duration)
	m.connected = metric.Register(reg, m.connected)
	m.reconnects = metric.Register(reg, m.reconnects)
	m.streamReplicas = metric.Register(reg, m.streamReplicas)
	m.streamMismatch = metric.Register(reg, m.streamMismatch)
	return m
}
