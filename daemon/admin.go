package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
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

// adminServer is the admin HTTP API (docs/admin-api.md) of `run`, `demo`
// and `load`: /healthz, /readyz, /metrics and /debug/pprof here; the /v1
// routes of what it serves are added by servePipeline (or serveLoader).
//
// Auth: /healthz, /readyz and /metrics are always open. With a token file,
// every /v1 request and /debug/pprof needs `Authorization: Bearer <token>`;
// without one, POST /v1 and /debug/pprof accept loopback clients only and
// GET /v1 is open.
type adminServer struct {
	ln       net.Listener
	srv      *http.Server
	mux      *http.ServeMux
	auth     *adminAuth
	log      zerolog.Logger
	requests *prometheus.CounterVec
	started  time.Time
	ready    func() bool
	drained  func() bool
	draining atomic.Bool
}

// adminConfig is what newAdminServer needs.
type adminConfig struct {
	Listen   string
	Auth     *adminAuth
	Registry *prometheus.Registry
	Log      zerolog.Logger
	Now      func() time.Time
	// Ready answers /readyz and the materializer_ready gauge.
	Ready func() bool
	// Drained (optional) makes /readyz say "drained" while it is true.
	Drained func() bool
}

// newAdminServer listens on cfg.Listen at once, so a taken port fails
// start-up with a clear error, and serves once Run is called.
func newAdminServer(cfg adminConfig) (*adminServer, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin server: %w", err)
	}
	if cfg.Drained == nil {
		cfg.Drained = func() bool { return false }
	}
	a := &adminServer{ln: ln, mux: http.NewServeMux(), auth: cfg.Auth, ready: cfg.Ready, drained: cfg.Drained,
		log: cfg.Log.With().Str("component", "admin").Logger(), started: cfg.Now()}
	a.srv = &http.Server{
		Handler:           a.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(warnWriter{a.log}, "", 0),
	}
	a.routes(cfg.Registry)
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

// routes adds the routes every admin API has.
func (a *adminServer) routes(reg *prometheus.Registry) {
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "materializer_admin_requests_total",
		Help: "Admin API requests by route and HTTP status code.",
	}, []string{"handler", "code"})
	reg.MustRegister(a.requests, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "materializer_ready",
		Help: "1 while the process reports ready (as /readyz), else 0.",
	}, func() float64 {
		if a.ready() {
			return 1
		}
		return 0
	}))
	a.open("GET /healthz", http.HandlerFunc(a.healthz))
	a.open("GET /readyz", http.HandlerFunc(a.readyz))
	a.open("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Go's profiler, for incidents and performance work.
	a.mux.Handle("GET /debug/pprof/", a.auth.guard(pprof.Index))
	a.mux.Handle("GET /debug/pprof/profile", a.auth.guard(pprof.Profile))
	a.mux.Handle("GET /debug/pprof/trace", a.auth.guard(pprof.Trace))
}

// open serves a route to everyone, counted.
func (a *adminServer) open(pattern string, h http.Handler) {
	a.mux.Handle(pattern, promhttp.InstrumentHandlerCounter(a.requests.MustCurryWith(prometheus.Labels{"handler": pattern}), h))
}

// read serves a GET /v1 route: the token when one is configured.
func (a *adminServer) read(pattern string, h http.HandlerFunc) { a.open(pattern, a.auth.readable(h)) }

// write serves a mutating POST /v1 route: the token, or loopback without one.
func (a *adminServer) write(pattern string, h http.HandlerFunc) { a.open(pattern, a.auth.guard(h)) }

func (a *adminServer) healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

func (a *adminServer) readyz(w http.ResponseWriter, _ *http.Request) {
	switch {
	case a.draining.Load():
		writeText(w, http.StatusServiceUnavailable, "draining")
	case a.drained():
		writeText(w, http.StatusServiceUnavailable, "drained")
	case !a.ready():
		writeText(w, http.StatusServiceUnavailable, "not ready")
	default:
		writeText(w, http.StatusOK, "ready")
	}
}

// answer writes a result as JSON 200, or its error (see fail).
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
