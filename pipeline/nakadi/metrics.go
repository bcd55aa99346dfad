package nakadi

import (
	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/metric"
)

// metrics of a consumer. Per-partition series carry event_type and
// partition; consumer-wide ones carry event_type = the subscription's event
// types joined with ",".
type metrics struct {
	receivedOffset  *prometheus.GaugeVec
	committedOffset *prometheus.GaugeVec
	events          *prometheus.CounterVec
	bytes           *prometheus.CounterVec
	keepAlives      *prometheus.CounterVec
	commitLatency   *prometheus.HistogramVec
	unconsumed      *prometheus.GaugeVec
	lagSeconds      *prometheus.GaugeVec
	lost            *prometheus.CounterVec
	duplicates      *prometheus.CounterVec

	reconnects     *prometheus.CounterVec
	errors         *prometheus.CounterVec
	streaming      *prometheus.GaugeVec
	fatal          *prometheus.GaugeVec
	retentionSkips *prometheus.CounterVec
	commitRequest  *prometheus.HistogramVec
}

const ns = "materializer_nakadi_"

var partLabels = []string{"event_type", "partition"}

func newMetrics(reg prometheus.Registerer) *metrics {
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return metric.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + name, Help: help}, labels))
	}
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		return metric.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + name, Help: help}, labels))
	}
	h := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return metric.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + name, Help: help,
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12)}, labels))
	}
	return &metrics{
		receivedOffset:  g("received_offset", "Numeric part of the last offset received, per partition.", partLabels...),
		committedOffset: g("committed_offset", "Numeric part of the last offset committed by this consumer, per partition.", partLabels...),
		events:          c("events_received_total", "Events received (re-sends included).", partLabels...),
		bytes:           c("bytes_received_total", "Stream bytes received, keep-alives included.", partLabels...),
		keepAlives:      c("keepalives_received_total", "Keep-alive lines received.", partLabels...),
		commitLatency:   h("commit_latency_seconds", "Time from receiving a batch to Nakadi accepting its cursor.", partLabels...),
		unconsumed:      g("unconsumed_events", "unconsumed_events from /stats.", partLabels...),
		lagSeconds:      g("consumer_lag_seconds", "consumer_lag_seconds from /stats.", partLabels...),
		lost:            c("partitions_lost_total", "Partitions lost by this consumer's stream (422 on commit, or /stats).", partLabels...),
		duplicates:      c("duplicate_batches_total", "Event batches dropped because their offset did not advance on the stream.", partLabels...),
		reconnects:      c("reconnects_total", "Streams opened after the first one.", "event_type"),
		errors:          c("errors_total", "Errors by kind.", "event_type", "kind"),
		streaming:       g("streaming", "1 while a stream is open.", "event_type"),
		fatal:           g("fatal", "1 after 403/404: the consumer needs an operator.", "event_type"),
		retentionSkips:  c("retention_skips_total", "Lines saying Nakadi skipped events because retention passed (data loss).", "event_type"),
		commitRequest:   h("commit_request_duration_seconds", "Duration of commit requests.", "event_type"),
	}
}
