// Package emulator is an in-memory Nakadi for tests and the demo: a real
// HTTP server implementing the consumer-facing subset of the Nakadi API that
// docs/nakadi.md §10.1 lists: publishing with hash partitioning and metadata
// enrichment, subscriptions, streaming with every stream parameter, commits,
// cursor GET/PATCH, /stats, several consumers per subscription with
// rebalancing (handover after commit, docs/nakadi.md §6.2), the closing
// window (docs/nakadi.md §4.5), at-least-once re-sending of uncommitted
// events, and fault hooks (cut, delay, fail, duplicate, gaps, forced commit
// timeout, close on demand, bearer tokens).
//
// It does not share code with package nakadi on purpose: a bug in one
// should not hide in both. Stream parameters given in seconds may be
// fractional ("0.05") so tests can run fast; real Nakadi takes integers.
package emulator

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Now is the clock for received_at and for every deadline (commit
	// timeout, flush timeout, closing window). Default time.Now.
	Now func() time.Time
	// Tick is how often streams and the janitor look at their deadlines.
	// Default 5ms.
	Tick time.Duration
	// MaxCommitTimeout is the largest commit_timeout a stream may ask for,
	// and what 0 or no value means. Default 60s (Nakadi's).
	MaxCommitTimeout time.Duration
	// DefaultStreamTimeout applies when stream_timeout is unset, ≤0 or
	// >4200 s. Default 1h (Nakadi: random 50–70 min).
	DefaultStreamTimeout time.Duration
	// RetainEvents caps the events kept per partition (the oldest go, as
	// with retention time). 0 keeps everything.
	RetainEvents int
	// MaxEventBytes is the largest event accepted. Default 999000.
	MaxEventBytes int
	// Token, if set, is the bearer token every request must carry.
	Token string
}

// Server is the emulator. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	now  func() time.Time

	mu         sync.Mutex
	token      string
	eventTypes map[string]*eventType
	subs       map[string]*subscription
	faults     faults
	stats      counters

	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
	httpSrv  *http.Server
	url      string
	closeOne sync.Once
}

// New returns a server that is not listening yet: use Start, or Handler
// with a server of your own.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = 5 * time.Millisecond
	}
	if opts.MaxCommitTimeout <= 0 {
		opts.MaxCommitTimeout = 60 * time.Second
	}
	if opts.DefaultStreamTimeout <= 0 {
		opts.DefaultStreamTimeout = time.Hour
	}
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = 999000
	}
	s := &Server{
		opts: opts, now: opts.Now, token: opts.Token,
		eventTypes: make(map[string]*eventType), subs: make(map[string]*subscription),
		done: make(chan struct{}),
	}
	s.stats.init()
	s.wg.Add(1)
	go s.janitor()
	return s
}

// NewServer starts a server on a free port of 127.0.0.1 (like
// httptest.NewServer). It panics if it cannot listen.
func NewServer(opts Options) *Server {
	s := New(opts)
	if err := s.Start("127.0.0.1:0"); err != nil {
		panic(fmt.Sprintf("emulator: %v", err))
	}
	return s
}

// Start listens on addr ("host:port"; port 0 picks one) and serves in the
// background until Close.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	s.httpSrv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.httpSrv.Serve(ln)
	}()
	return nil
}

// URL is the base URL of a started server.
func (s *Server) URL() string { return s.url }

// Close ends every stream, stops serving and waits for the server's
// goroutines.
func (s *Server) Close() {
	s.closeOne.Do(func() {
		close(s.done)
		if s.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.httpSrv.Shutdown(ctx)
			cancel()
			_ = s.httpSrv.Close()
		}
		s.wg.Wait()
	})
}

// Handler returns the API as an http.Handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, r Route, h http.HandlerFunc) { mux.Handle(pattern, s.wrap(r, h)) }
	handle("POST /event-types/{name}/events", RoutePublish, s.handlePublish)
	handle("GET /event-types/{name}/partitions", RoutePartitions, s.handlePartitions)
	handle("POST /subscriptions", RouteCreateSubscription, s.handleCreateSubscription)
	handle("GET /subscriptions/{id}", RouteGetSubscription, s.handleGetSubscription)
	handle("DELETE /subscriptions/{id}", RouteDeleteSubscription, s.handleDeleteSubscription)
	handle("GET /subscriptions/{id}/events", RouteStream, s.handleStream)
	handle("POST /subscriptions/{id}/events", RouteStream, s.handleStream)
	handle("POST /subscriptions/{id}/cursors", RouteCommit, s.handleCommit)
	handle("GET /subscriptions/{id}/cursors", RouteGetCursors, s.handleGetCursors)
	handle("PATCH /subscriptions/{id}/cursors", RoutePatchCursors, s.handlePatchCursors)
	handle("GET /subscriptions/{id}/stats", RouteStats, s.handleStats)
	return mux
}

// wrap applies flow ids, counting, fault hooks and authentication.
func (s *Server) wrap(route Route, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flow := r.Header.Get("X-Flow-Id")
		if flow == "" {
			flow = newUUID()[:24]
		}
		w.Header().Set("X-Flow-Id", flow)
		f := s.takeFault(route)
		if f.delay > 0 {
			select {
			case <-time.After(f.delay):
			case <-r.Context().Done():
				return
			case <-s.done:
				return
			}
		}
		if f.status != 0 && !(route == RoutePublish && (f.status == 207 || f.status == 422)) {
			if f.retryAfter > 0 {
				w.Header().Set("Retry-After", fmt.Sprint(int((f.retryAfter+time.Second-1)/time.Second)))
			}
			s.count(route, f.status)
			writeProblem(w, f.status, "injected fault")
			return
		}
		if status, detail := s.authorize(r); status != 0 {
			s.count(route, status)
			writeProblem(w, status, detail)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		if f.status != 0 {
			r = r.WithContext(context.WithValue(r.Context(), publishFaultKey{}, f.status))
		}
		defer func() { s.count(route, rec.status()) }() // also when a cut stream panics
		h(rec, r)
	})
}

// authorize checks the bearer token and forbidden routes.
func (s *Server) authorize(r *http.Request) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		return http.StatusUnauthorized, "Full authentication is required to access this resource"
	}
	return 0, ""
}

// SetToken changes the bearer token every request must carry ("" turns the
// check off). Requests with the old token get 401 from now on.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	s.token = token
	s.mu.Unlock()
}

// janitor applies the time-based transitions of sessions whose handler is
// gone or waiting: commit timeouts, closing windows, rebalance barriers.
func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		now := s.now()
		for _, sub := range s.subs {
			for _, sess := range append([]*session(nil), sub.sessions...) {
				s.checkTimers(sess, now)
			}
		}
		s.mu.Unlock()
	}
}

// problem is the Problem JSON body (docs/nakadi.md §1.3).
type problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	p := problem{Title: http.StatusText(status), Status: status, Detail: detail}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		p.Type = fmt.Sprintf("https://httpstatus.es/%d", status)
	case http.StatusUnprocessableEntity:
		p.Type = "http://httpstatus.es/422"
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusRecorder remembers the status a handler wrote, for counters.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// newUUID returns a random version-4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// isUUID reports whether s has the 8-4-4-4-12 hex layout.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
