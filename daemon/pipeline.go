package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/conf"
)

// Errors a controller returns that the admin API maps to HTTP statuses.
var (
	// errNotRunning: the pipeline cannot do this (yet); 503.
	errNotRunning = errors.New("pipeline not running")
	// errUnknownEventType: no such configured event type; 404.
	errUnknownEventType = errors.New("unknown event type")
)

// controller is what the admin API and the supervisor need from the engine.
// Results are encoded as JSON as they are; they must not hold secrets.
type controller interface {
	// Ready reports whether recovery finished and consuming runs (/readyz,
	// READY=1).
	Ready() bool
	// EventTypes is the "event_types" list of GET /v1/status (DESIGN.md §9).
	EventTypes(ctx context.Context) (any, error)
	// Flush closes the open sessions of one event type ("" = all), rolls
	// the files and waits until they are delivered; it returns the files.
	Flush(ctx context.Context, eventType string) (any, error)
	// TakeCheckpoint takes a checkpoint now and describes it.
	TakeCheckpoint(ctx context.Context) (any, error)
	// Checkpoints lists the checkpoints.
	Checkpoints(ctx context.Context) (any, error)
	// Pause stops consuming one event type; Resume restarts it.
	Pause(ctx context.Context, eventType string) error
	Resume(ctx context.Context, eventType string) error
}

// pipeline is the engine `materializer run` starts: Run returns after every
// goroutine it started exited, nil when ctx was cancelled (the drain), an
// error when it failed on its own. A pipeline may also implement
// `Healthy() error`: the systemd watchdog is fed only while it returns nil.
type runner interface {
	controller
	Run(ctx context.Context) error
}

// pipelineDeps is what run hands to the engine.
type pipelineDeps struct {
	Config    *conf.Config
	Log       zerolog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
	Overrides pipelineOverrides
}

// newPipeline builds the engine.
func newPipeline(deps pipelineDeps) (runner, error) {
	return newEngine(deps)
}
