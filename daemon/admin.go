package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"materializer/checkpoint"
	"materializer/pipeline"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// adminServer is the admin HTTP API of docs/admin-api.md on daemon.admin_listen.
type adminServer struct {
	ln       net.Listener
	srv      *http.Server
	pipe     pipelineAPI
	auth     *adminAuth
	log      zerolog.Logger
	started  time.Time
	draining atomic.Bool
}

// adminConfig is what newAdminServer needs.
type adminConfig struct {
	Listen   string
	Auth     *adminAuth
	Registry *prometheus.Registry
	Log      zerolog.Logger
	Now      func() time.Time
}

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
}

// newAdminServer listens on cfg.Listen at once, so a taken port fails
// start-up with a clear error, and serves pipe once Run is called.
func newAdminServer(cfg adminConfig, pipe pipelineAPI) (*adminServer, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin server: %w", err)
	}
	a := &adminServer{ln: ln, pipe: pipe, auth: cfg.Auth, log: cfg.Log.With().Str("component", "admin").Logger(), started: cfg.Now()}
	a.srv = &http.Server{
		Handler:           a.routes(cfg.Registry),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(warnWriter{a.log}, "", 0),
	}
	return a, nil
}

// Addr is the address the server listens on (the port resolved when
// admin_listen asked for port 0).
func (a *adminServer) Addr() string { return a.ln.Addr().String() }

// SetDraining makes /readyz answer 503 while the daemon stops.
func (a *adminServer) SetDraining() { a.draining.Store(true) }

// Run serves until ctx is cancelled, then shuts down gracefully (in-flight
// requests get 5 s) and returns after the server stopped.
func (a *adminServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func (a *adminServer) routes(reg *prometheus.Registry) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "materializer_admin_requests_total",
		Help: "Admin API requests by route and HTTP status code.",
	}, []string{"handler", "code"})
	reg.MustRegister(requests, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "materializer_ready",
		Help: "1 while the pipeline reports ready (as /readyz), else 0.",
	}, func() float64 {
		if a.pipe.Ready() {
			return 1
		}
		return 0
	}))
	mux := http.NewServeMux()
	handle := func(pattern string, h http.Handler) {
		mux.Handle(pattern, promhttp.InstrumentHandlerCounter(requests.MustCurryWith(prometheus.Labels{"handler": pattern}), h))
	}
	handle("GET /healthz", http.HandlerFunc(a.healthz))
	handle("GET /readyz", http.HandlerFunc(a.readyz))
	handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	handle("GET /v1/status", http.HandlerFunc(a.status))
	handle("GET /v1/checkpoints", http.HandlerFunc(a.listCheckpoints))
	handle("POST /v1/checkpoints", a.auth.require(a.takeCheckpoint))
	handle("POST /v1/flush", a.auth.require(a.flush))
	handle("POST /v1/event-types/{name}/pause", a.auth.require(a.pause))
	handle("POST /v1/event-types/{name}/resume", a.auth.require(a.resume))
	// Go's profiler, for incidents and performance work; guarded like the
	// POST endpoints (bearer token, or loopback without one).
	mux.Handle("GET /debug/pprof/", a.auth.require(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", a.auth.require(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", a.auth.require(pprof.Trace))
	return mux
}

func (a *adminServer) healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

func (a *adminServer) readyz(w http.ResponseWriter, _ *http.Request) {
	switch {
	case a.draining.Load():
		writeText(w, http.StatusServiceUnavailable, "draining")
	case !a.pipe.Ready():
		writeText(w, http.StatusServiceUnavailable, "not ready")
	default:
		writeText(w, http.StatusOK, "ready")
	}
}

// statusDoc is the body of GET /v1/status: the daemon's fields and the
// pipeline's. Every key is snake_case.
type statusDoc struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Draining  bool      `json:"draining"`
	pipeline.Status
}

func (a *adminServer) status(w http.ResponseWriter, r *http.Request) {
	st, err := a.pipe.Status(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, statusDoc{Version: version, StartedAt: a.started.UTC(), Draining: a.draining.Load(), Status: st})
}

func (a *adminServer) flush(w http.ResponseWriter, r *http.Request) {
	answer[pipeline.FlushResult](a, w, r)(a.pipe.Flush(r.Context(), r.URL.Query().Get("event_type")))
}

func (a *adminServer) takeCheckpoint(w http.ResponseWriter, r *http.Request) {
	answer[*checkpoint.Result](a, w, r)(a.pipe.TakeCheckpoint(r.Context()))
}

func (a *adminServer) listCheckpoints(w http.ResponseWriter, r *http.Request) {
	answer[[]checkpoint.Info](a, w, r)(a.pipe.Checkpoints(r.Context()))
}

// eventTypeState is the answer of pause and resume.
type eventTypeState struct {
	EventType string `json:"event_type"`
	State     string `json:"state"`
}

func (a *adminServer) pause(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	answer[eventTypeState](a, w, r)(eventTypeState{name, "paused"}, a.pipe.Pause(r.Context(), name))
}

func (a *adminServer) resume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	answer[eventTypeState](a, w, r)(eventTypeState{name, "consuming"}, a.pipe.Resume(r.Context(), name))
}

// answer writes a pipeline result as JSON 200, or its error (see fail).
func answer[T any](a *adminServer, w http.ResponseWriter, r *http.Request) func(T, error) {
	return func(v T, err error) {
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// fail writes err as {"error": "..."} with the status errors map to.
func (a *adminServer) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		a.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("admin request failed")
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, pipeline.ErrNotRunning):
		return http.StatusServiceUnavailable
	case errors.Is(err, pipeline.ErrUnknownEventType):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, s)
}

// warnWriter routes net/http's own error log (bad requests, TLS noise) into
// the structured log.
type warnWriter struct{ log zerolog.Logger }

func (w warnWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
