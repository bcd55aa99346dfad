package main

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry returns the registry /metrics serves, with the Go runtime and
// process collectors, build info, and readiness. Components register their
// own materializer_<component>_<what>_<unit> metrics on it.
func newRegistry(ready func() bool) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "materializer_build_info",
			Help:        "Always 1; labels name the build.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "materializer_ready",
			Help: "1 while the pipeline reports ready (as /readyz), else 0.",
		}, func() float64 {
			if ready() {
				return 1
			}
			return 0
		}),
	)
	return reg
}
