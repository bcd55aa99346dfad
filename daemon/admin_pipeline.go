package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"materializer/checkpoint"
	"materializer/pipeline"
)

// pipelineAPI is what the admin API serves of the pipeline
// (*pipeline.Pipeline). Results are encoded as JSON as they are; they hold
// no secrets.
type pipelineAPI interface {
	Ready() bool
	Status(ctx context.Context) (pipeline.Status, error)
	Flush(ctx context.Context, eventType string) (pipeline.FlushResult, error)
	TakeCheckpoint(ctx context.Context) (*checkpoint.Result, error)
	Checkpoints(ctx context.Context) ([]checkpoint.Info, error)
	Pause(ctx context.Context, eventType string) error
	Resume(ctx context.Context, eventType string) error
	Drain(ctx context.Context) (pipeline.HandoverResult, error)
	Undrain(ctx context.Context) error
}

// servePipeline adds the /v1 routes of the pipeline.
func (a *adminServer) servePipeline(p pipelineAPI) {
	a.read("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := p.Status(r.Context())
		answer[statusDoc](a, w, r)(statusDoc{Version: version, StartedAt: a.started.UTC(), Draining: a.draining.Load(), Status: st}, err)
	})
	a.read("GET /v1/checkpoints", func(w http.ResponseWriter, r *http.Request) {
		answer[[]checkpoint.Info](a, w, r)(p.Checkpoints(r.Context()))
	})
	a.write("POST /v1/checkpoints", func(w http.ResponseWriter, r *http.Request) {
		answer[*checkpoint.Result](a, w, r)(p.TakeCheckpoint(r.Context()))
	})
	a.write("POST /v1/flush", func(w http.ResponseWriter, r *http.Request) {
		answer[pipeline.FlushResult](a, w, r)(p.Flush(r.Context(), r.URL.Query().Get("event_type")))
	})
	a.write("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) {
		answer[pipeline.HandoverResult](a, w, r)(p.Drain(r.Context()))
	})
	a.write("POST /v1/undrain", func(w http.ResponseWriter, r *http.Request) {
		answer[drainState](a, w, r)(drainState{"consuming"}, p.Undrain(r.Context()))
	})
	a.write("POST /v1/event-types/{name}/pause", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		answer[eventTypeState](a, w, r)(eventTypeState{name, "paused"}, p.Pause(r.Context(), name))
	})
	a.write("POST /v1/event-types/{name}/resume", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		answer[eventTypeState](a, w, r)(eventTypeState{name, "consuming"}, p.Resume(r.Context(), name))
	})
}

// statusDoc is the body of GET /v1/status: the daemon's fields and the
// pipeline's. Every key is snake_case.
type statusDoc struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Draining  bool      `json:"draining"`
	pipeline.Status
}

// eventTypeState is the answer of pause and resume.
type eventTypeState struct {
	EventType string `json:"event_type"`
	State     string `json:"state"`
}

// drainState is the answer of undrain.
type drainState struct {
	State string `json:"state"`
}

// statusOf maps the pipeline's errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, pipeline.ErrNotRunning):
		return http.StatusServiceUnavailable
	case errors.Is(err, pipeline.ErrUnknownEventType):
		return http.StatusNotFound
	case errors.Is(err, pipeline.ErrHandoverIncomplete):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
