// Package metric holds what the pipeline's packages share about Prometheus
// metrics.
package metric

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it, or returns the collector
// registered before under the same name, so components created more than
// once on one registry (a consumer per event type, a publisher re-created on
// reload) share their metrics. A nil reg registers nothing. A name clash with
// a collector of another type is a programming error and panics.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
