package main

import (
	"net/http"
	"time"

	"materializer/pipeline/load"
)

// loaderAPI is what the admin API serves of the loader (*load.Loader).
type loaderAPI interface {
	Status() load.Status
}

// serveLoader adds the /v1 routes of `materializer load`
// (docs/loader.md#admin-api-metrics-signals).
func (a *adminServer) serveLoader(l loaderAPI) {
	a.read("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, loadStatusDoc{Version: version, StartedAt: a.started.UTC(),
			Draining: a.draining.Load(), Status: l.Status()})
	})
}

// loadStatusDoc is the body of the loader's GET /v1/status.
type loadStatusDoc struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Draining  bool      `json:"draining"`
	load.Status
}
