package nakadi

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	ok := Config{URL: "https://nakadi.example.org", OwningApplication: "materializer", EventTypes: []string{"a"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	d := ok.withDefaults()
	if d.BatchLimit != 500 || d.MaxUncommittedEvents != 50000 || d.CommitTimeout != time.Minute ||
		d.CommitInterval != 2*time.Second || d.IdleTimeout != 130*time.Second || d.ReadFrom != "end" || d.ConsumerGroup != "default" {
		t.Fatalf("defaults: %+v", d)
	}
	q := d.streamQuery()
	if q.Get("batch_flush_timeout") != "5" || q.Get("commit_timeout") != "60" || q.Get("max_uncommitted_events") != "50000" || q.Has("stream_timeout") {
		t.Fatalf("query: %v", q)
	}
	d.BatchFlushTimeout = 1500 * time.Millisecond
	if got := d.streamQuery().Get("batch_flush_timeout"); got != "2" {
		t.Fatalf("whole seconds round up: %s", got)
	}
	d.FractionalSeconds = true
	if got := d.streamQuery().Get("batch_flush_timeout"); got != "1.5" {
		t.Fatalf("fractional: %s", got)
	}

	bad := Config{URL: "ftp://user:secret@x", ReadFrom: "middle", BatchLimit: 10, MaxUncommittedEvents: 5,
		BatchFlushTimeout: -time.Second, CommitTimeout: 2 * time.Minute, CommitInterval: time.Minute,
		IdleTimeout: time.Second, BackoffMin: time.Second, BackoffMax: time.Millisecond, StreamTimeout: 2 * time.Hour}
	err := bad.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, key := range []string{"url", "owning_application", "event_types", "read_from", "max_uncommitted_events",
		"batch_flush_timeout", "commit_timeout", "commit_interval", "idle_timeout", "backoff", "stream_timeout"} {
		if !strings.Contains(err.Error(), key+" = ") {
			t.Errorf("problem with %s not reported:\n%v", key, err)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("URL password in error: %v", err)
	}
}

func TestProblemErrorsMatchSentinels(t *testing.T) {
	for _, tc := range []struct {
		op     string
		status int
		is     []error
		not    []error
	}{
		{opCommit, 422, []error{ErrUnprocessable, ErrSessionGone}, []error{ErrConflict}},
		{opStream, 422, []error{ErrUnprocessable}, []error{ErrSessionGone}},
		{opStream, 404, []error{ErrNotFound, ErrSubscriptionNotFound}, nil},
		{opCreate, 404, []error{ErrNotFound}, []error{ErrSubscriptionNotFound}},
		{opStream, 409, []error{ErrConflict}, []error{ErrServer}},
		{opStream, 403, []error{ErrForbidden}, nil},
		{opStream, 401, []error{ErrUnauthorized}, nil},
		{opStream, 429, []error{ErrTooManyRequests}, nil},
		{opStream, 503, []error{ErrServer}, nil},
		{opCommit, 400, []error{ErrBadRequest}, nil},
	} {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Retry-After": {"7"}}}
		err := error(problemFrom(tc.op, resp, []byte(`{"title":"T","status":1,"detail":"D"}`)))
		for _, target := range tc.is {
			if !errors.Is(err, target) {
				t.Errorf("%s %d: not %v", tc.op, tc.status, target)
			}
		}
		for _, target := range tc.not {
			if errors.Is(err, target) {
				t.Errorf("%s %d: is %v", tc.op, tc.status, target)
			}
		}
		if retryAfter(err) != 7*time.Second || !strings.Contains(err.Error(), "T: D") {
			t.Errorf("%v: retry-after %v", err, retryAfter(err))
		}
	}
	if !Fatal(&ProblemError{Op: opStream, Status: 403}) || Fatal(&ProblemError{Op: opStream, Status: 409}) {
		t.Error("Fatal")
	}
	if !Transient(io.ErrUnexpectedEOF) || !Transient(&ProblemError{Status: 503}) || Transient(&ProblemError{Status: 422}) {
		t.Error("Transient")
	}
	pe := problemFrom(opStats, &http.Response{StatusCode: 502, Header: http.Header{}}, []byte("<html>bad gateway</html>"))
	if pe.Title != "Bad Gateway" || pe.Detail != "<html>bad gateway</html>" {
		t.Errorf("non-JSON problem: %+v", pe)
	}
}

func TestIdleReaderCancelsASilentStream(t *testing.T) {
	pr, pw := io.Pipe()
	fired := make(chan struct{})
	// The first byte is there at once (a writer goroutine could be late by
	// more than the timeout on a loaded machine); then the stream is silent.
	in := io.MultiReader(strings.NewReader("x"), pr)
	ir := newIdleReader(in, 50*time.Millisecond, func() { pw.CloseWithError(errors.New("cancelled")); close(fired) })
	buf := make([]byte, 8)
	if n, err := ir.Read(buf); n != 1 || err != nil {
		t.Fatalf("read: %d %v", n, err)
	}
	time.Sleep(100 * time.Millisecond) // time outside Read does not count
	if ir.fired.Load() {
		t.Fatal("fired while not reading")
	}
	if _, err := ir.Read(buf); err == nil {
		t.Fatal("silent read returned")
	}
	<-fired
	if !ir.fired.Load() {
		t.Fatal("not marked fired")
	}
}

// A URL's userinfo never reaches an error: neither a password nor a bare
// token (https://TOKEN@host), in config problems and in transport errors.
func TestErrorsNeverCarryURLCredentials(t *testing.T) {
	for _, u := range []string{"ftp://SECRETTOKEN@nakadi", "ftp://user:SECRETPW@nakadi"} {
		err := Config{URL: u, OwningApplication: "a", EventTypes: []string{"a"}}.Validate()
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Validate(%s): %v", u, err)
		}
	}
	for _, u := range []string{"http://SECRETTOKEN@127.0.0.1:1/x", "http://user:SECRETPW@127.0.0.1:1/x"} {
		_, err := http.Get(u) // net/http masks a password itself, not a bare token
		if err == nil {
			t.Fatalf("GET %s: no error", u)
		}
		if got := redactErr(err).Error(); strings.Contains(got, "SECRET") {
			t.Errorf("GET %s: %s", u, got)
		}
	}
}
