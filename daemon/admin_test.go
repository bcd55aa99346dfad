package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"materializer/checkpoint"
	"materializer/pipeline"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// adminFixture is an admin server over real HTTP in front of the
// placeholder pipeline, which is not started (not ready) until startPipeline.
type adminFixture struct {
	t     *testing.T
	a     *adminServer
	pipe  *placeholderPipeline
	base  string
	pctx  context.Context
	pstop context.CancelFunc
}

func newAdminFixture(t *testing.T, listen, tokenFile string) *adminFixture {
	t.Helper()
	auth, err := newAdminAuth(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	pipe := &placeholderPipeline{}
	reg := newRegistry()
	a, err := newAdminServer(adminConfig{Listen: listen, Auth: auth, Registry: reg, Log: zerolog.Nop(), Now: time.Now, Ready: pipe.Ready})
	if err != nil {
		t.Fatal(err)
	}
	a.servePipeline(pipe)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	f := &adminFixture{t: t, a: a, pipe: pipe, base: "http://" + a.Addr()}
	f.pctx, f.pstop = context.WithCancel(context.Background())
	t.Cleanup(func() {
		f.pstop()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin Run: %v", err)
		}
	})
	return f
}

func (f *adminFixture) startPipeline() {
	go f.pipe.Run(f.pctx)
	waitStatus(f.t, f.base+"/readyz", 200)
}

func TestAdminHealthAndReadiness(t *testing.T) {
	f := newAdminFixture(t, "127.0.0.1:0", "")
	if code, body := get(t, f.base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, f.base+"/readyz"); code != 503 || body != "not ready\n" {
		t.Fatalf("/readyz before the pipeline runs: %d %q", code, body)
	}
	f.startPipeline()
	f.a.SetDraining()
	if code, body := get(t, f.base+"/readyz"); code != 503 || body != "draining\n" {
		t.Fatalf("/readyz while draining: %d %q", code, body)
	}
	if code, _ := get(t, f.base+"/healthz"); code != 200 {
		t.Fatalf("/healthz while draining: %d", code)
	}
}

func TestAdminMetrics(t *testing.T) {
	f := newAdminFixture(t, "127.0.0.1:0", "")
	f.startPipeline()
	get(t, f.base+"/healthz")
	code, body := get(t, f.base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"materializer_ready 1\n",
		`materializer_build_info{goversion="go`,
		"go_goroutines ",
		"process_open_fds ",
		`materializer_admin_requests_total{code="200",handler="GET /healthz"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAdminStatus(t *testing.T) {
	f := newAdminFixture(t, "127.0.0.1:0", "")
	f.startPipeline()
	code, body := get(t, f.base+"/v1/status")
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != 200 {
		t.Fatalf("/v1/status: %d %q: %v", code, body, err)
	}
	if ets, ok := doc["event_types"].([]any); !ok || len(ets) != 0 {
		t.Errorf("event_types = %#v, want []", doc["event_types"])
	}
	if doc["version"] != version || doc["ready"] != true || doc["draining"] != false || doc["started_at"] == nil {
		t.Errorf("status: %v", doc)
	}
}

func TestAdminActionsUntilWired(t *testing.T) {
	f := newAdminFixture(t, "127.0.0.1:0", "")
	f.startPipeline()
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v1/flush"},
		{"POST", "/v1/flush?event_type=article.updated"},
		{"POST", "/v1/checkpoints"},
		{"GET", "/v1/checkpoints"},
		{"POST", "/v1/event-types/article.updated/pause"},
		{"POST", "/v1/event-types/article.updated/resume"},
		{"POST", "/v1/drain"},
		{"POST", "/v1/undrain"},
	} {
		code, body := do(t, tc.method, f.base+tc.path, "")
		if code != 503 || strings.TrimSpace(body) != "{\n  \"error\": \"pipeline not running\"\n}" {
			t.Errorf("%s %s: %d %q", tc.method, tc.path, code, body)
		}
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/v1/flush", 405},
		{"POST", "/healthz", 405},
		{"GET", "/v1/nothing", 404},
	} {
		if code, _ := do(t, tc.method, f.base+tc.path, ""); code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, code, tc.code)
		}
	}
}

func TestAdminBearerToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("  first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newAdminFixture(t, "127.0.0.1:0", tokenFile)
	f.startPipeline()
	for _, tc := range []struct {
		token string
		code  int
	}{{"", 401}, {"first", 401}, {"first-token-x", 401}, {"first-token", 503}} {
		if code, _ := do(t, "POST", f.base+"/v1/flush", tc.token); code != tc.code {
			t.Errorf("token %q: %d, want %d", tc.token, code, tc.code)
		}
	}
	// With a token, reading needs it too — /v1 and the profiler — but
	// health, readiness and metrics stay open.
	for _, path := range []string{"/v1/status", "/v1/checkpoints", "/debug/pprof/"} {
		if code, _ := get(t, f.base+path); code != 401 {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
	}
	if code, _ := do(t, "GET", f.base+"/v1/status", "first-token"); code != 200 {
		t.Errorf("GET /v1/status with the token: %d", code)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := get(t, f.base+path); code != 200 {
			t.Errorf("GET %s with a token configured: %d, want 200", path, code)
		}
	}
	// Rotation: Reload picks up the new token; the old one stops working.
	if err := os.WriteFile(tokenFile, []byte("second-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.a.auth.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, "POST", f.base+"/v1/flush", "first-token"); code != 401 {
		t.Errorf("old token after rotation: %d", code)
	}
	if code, _ := do(t, "POST", f.base+"/v1/flush", "second-token"); code != 503 {
		t.Errorf("new token after rotation: %d", code)
	}
	// An empty file keeps the previous token.
	if err := os.WriteFile(tokenFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.a.auth.Reload(); !errors.Is(err, errEmptyToken) {
		t.Fatalf("Reload of an empty file: %v", err)
	}
	if code, _ := do(t, "POST", f.base+"/v1/flush", "second-token"); code != 503 {
		t.Errorf("token after a failed reload: %d", code)
	}
}

func TestAdminAuthFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := newAdminAuth(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "daemon.admin_token_file: "+dir) {
		t.Errorf("missing token file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := newAdminAuth(empty); !errors.Is(err, errEmptyToken) {
		t.Errorf("empty token file: %v", err)
	}
}

// TestAdminLoopbackOnlyWithoutToken: without a token file, POST endpoints
// refuse clients that are not on loopback. Over real HTTP when the host has
// a non-loopback address, and always through the handler.
func TestAdminLoopbackOnlyWithoutToken(t *testing.T) {
	f := newAdminFixture(t, "0.0.0.0:0", "")
	f.startPipeline()
	req := httptest.NewRequest("POST", "/v1/flush", nil)
	req.RemoteAddr = "192.0.2.10:40000"
	rec := httptest.NewRecorder()
	f.a.srv.Handler.ServeHTTP(rec, req)
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "loopback clients only") {
		t.Errorf("from 192.0.2.10: %d %q", rec.Code, rec.Body.String())
	}
	if code, _ := do(t, "POST", f.base+"/v1/flush", ""); code != 503 {
		t.Errorf("from loopback: %d, want 503", code)
	}
	ip := nonLoopbackIP()
	if ip == "" {
		t.Log("no non-loopback address on this host: the real-HTTP check from a non-loopback client is skipped")
		return
	}
	_, port, _ := net.SplitHostPort(f.a.Addr())
	url := fmt.Sprintf("http://%s/v1/flush", net.JoinHostPort(ip, port))
	if code, body := do(t, "POST", url, ""); code != 403 {
		t.Errorf("from %s: %d %q, want 403", ip, code, body)
	}
}

func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

func TestAdminRunStopsOnCancel(t *testing.T) {
	auth, _ := newAdminAuth("")
	a, err := newAdminServer(adminConfig{Listen: "127.0.0.1:0", Auth: auth, Registry: newRegistry(), Log: zerolog.Nop(), Now: time.Now,
		Ready: func() bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitStatus(t, "http://"+a.Addr()+"/healthz", 200)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := net.Dial("tcp", a.Addr()); err == nil {
		t.Fatal("still listening after Run returned")
	}
}

func TestStatusOf(t *testing.T) {
	for err, want := range map[error]int{
		pipeline.ErrNotRunning:                                503,
		fmt.Errorf("flush: %w", pipeline.ErrUnknownEventType): 404,
		context.DeadlineExceeded:                              504,
		errors.New("boom"):                                    500,
	} {
		if got := statusOf(err); got != want {
			t.Errorf("statusOf(%v) = %d, want %d", err, got, want)
		}
	}
}

// placeholderPipeline stands in for the engine in tests of the admin API.
type placeholderPipeline struct{ ready atomic.Bool }

func (p *placeholderPipeline) Run(ctx context.Context) error {
	p.ready.Store(true)
	<-ctx.Done()
	p.ready.Store(false)
	return nil
}

func (p *placeholderPipeline) Ready() bool { return p.ready.Load() }

func (p *placeholderPipeline) Status(context.Context) (pipeline.Status, error) {
	return pipeline.Status{Ready: p.Ready(), EventTypes: []pipeline.EventTypeStatus{}}, nil
}

func (p *placeholderPipeline) Flush(context.Context, string) (pipeline.FlushResult, error) {
	return pipeline.FlushResult{}, pipeline.ErrNotRunning
}

func (p *placeholderPipeline) TakeCheckpoint(context.Context) (*checkpoint.Result, error) {
	return nil, pipeline.ErrNotRunning
}

func (p *placeholderPipeline) Checkpoints(context.Context) ([]checkpoint.Info, error) {
	return nil, pipeline.ErrNotRunning
}

func (p *placeholderPipeline) Pause(context.Context, string) error { return pipeline.ErrNotRunning }

func (p *placeholderPipeline) Resume(context.Context, string) error { return pipeline.ErrNotRunning }

func (p *placeholderPipeline) Drain(context.Context) (pipeline.HandoverResult, error) {
	return pipeline.HandoverResult{}, pipeline.ErrNotRunning
}

func (p *placeholderPipeline) Undrain(context.Context) error { return pipeline.ErrNotRunning }
