package s3test

import (
	"net/http"
	"net/url"
	"sync"
)

// Fault is how a request is failed.
type Fault int

const (
	// SlowDown answers 503 with the S3 SlowDown error (throttling).
	SlowDown Fault = iota + 1
	// InternalError answers 500 InternalError.
	InternalError
	// DropConnection closes the connection without an answer.
	DropConnection
	// AccessDenied answers 403 without a body, as AWS answers a HEAD of a
	// missing key when the caller may not list the bucket.
	AccessDenied
)

// Request is one request seen, with the status it was answered with.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Status int // 0 for a dropped connection
}

// Faults sits in front of an S3 handler: it records requests, runs a hook
// before each, and fails requests on demand (Down/Up, FailNext).
type Faults struct {
	mu       sync.Mutex
	down     Fault
	failN    int
	failWith Fault
	failIf   func(*http.Request) bool
	before   func(*http.Request)
	requests []Request
}

// Down makes every request fail with fault until Up.
func (f *Faults) Down(fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = fault
}

// Up ends Down.
func (f *Faults) Up() { f.Down(0) }

// FailNext fails the next n requests for which match returns true (nil
// matches all) with fault.
func (f *Faults) FailNext(n int, fault Fault, match func(*http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failN, f.failWith, f.failIf = n, fault, match
}

// Before installs a hook that sees each request before it is served (and
// before any fault); nil removes it. Tests use it to act "between" two
// requests of the code under test, e.g. to create a competing object.
func (f *Faults) Before(hook func(*http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before = hook
}

// Requests returns the requests seen so far.
func (f *Faults) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// Count returns how many requests seen so far satisfy match.
func (f *Faults) Count(match func(Request) bool) int {
	n := 0
	for _, r := range f.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

// Wrap returns next behind the fault injection.
func (f *Faults) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()}
		f.mu.Lock()
		hook := f.before
		f.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		if fault := f.faultFor(r); fault != 0 {
			rec.Status = inject(w, fault)
		} else {
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(sw, r)
			rec.Status = sw.status
		}
		f.mu.Lock()
		f.requests = append(f.requests, rec)
		f.mu.Unlock()
	})
}

func (f *Faults) faultFor(r *http.Request) Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != 0 {
		return f.down
	}
	if f.failN > 0 && (f.failIf == nil || f.failIf(r)) {
		f.failN--
		return f.failWith
	}
	return 0
}

func inject(w http.ResponseWriter, fault Fault) int {
	switch fault {
	case DropConnection:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return 0
			}
		}
		panic(http.ErrAbortHandler)
	case AccessDenied:
		w.WriteHeader(http.StatusForbidden)
		return http.StatusForbidden
	case InternalError:
		return writeError(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	default:
		return writeError(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) int {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>` + msg + `</Message></Error>`))
	return status
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
