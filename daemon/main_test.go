package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"materializer/internal/e2etest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the materializer binary TestMain builds for the process tests.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	if bin := os.Getenv("MATERIALIZER_BIN"); bin != "" {
		// Another build (an earlier revision, for a before/after figure).
		binPath = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "materializer-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "materializer")
	args := []string{"build", "-o", binPath}
	if b := flag.Lookup("test.bench"); b == nil || b.Value.String() == "" {
		// Tests get a binary that panics on unbalanced counters;
		// benchmarks measure the binary as it ships.
		args = append(args, "-tags", "invariants")
	}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building materializer:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runBinary runs the binary to completion and returns its exit code,
// stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binPath, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// configOpts are the knobs of testConfig.
type configOpts struct {
	DataDir, AdminListen, TokenFile, LogLevel, DrainTimeout string
	NakadiURL                                               string // default: a Nakadi emulator for this test
}

// testConfig writes a valid config (JSON logs, so tests can read them) and
// returns its path.
func testConfig(t *testing.T, dir string, o configOpts) string {
	t.Helper()
	if o.AdminListen == "" {
		o.AdminListen = "127.0.0.1:0"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.DrainTimeout == "" {
		o.DrainTimeout = "10s"
	}
	if o.NakadiURL == "" {
		o.NakadiURL = e2etest.ArticleEmulator(t, 2).URL()
	}
	text := fmt.Sprintf(`
[daemon]
data_dir         = %q
admin_listen     = %q
admin_token_file = %q
log_level        = %q
log_format       = "json"
drain_timeout    = %q

[nakadi]
url                = %q
owning_application = "materializer-test"

[storage]
url = "file://%s"

[[event_types]]
name          = "article.updated"
partition_key = ["article_id"]
ordering_key  = "version"
ordering      = "number"
session_gap   = "2m"
session_max   = "30m"

  [[event_types.tables]]
  name    = "article"
  columns = [{ name = "article_id", path = "article_id", type = "int" }]
`, o.DataDir, o.AdminListen, o.TokenFile, o.LogLevel, o.DrainTimeout, o.NakadiURL, filepath.Join(dir, "storage"))
	path := filepath.Join(dir, "materializer.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a running `materializer run` whose JSON log lines are collected.
type proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	mu    sync.Mutex
	cond  *sync.Cond
	lines []string
	eof   bool
	done  chan struct{}
	code  int
}

// startRun starts `materializer run -config path` with extra environment.
func startRun(t testing.TB, path string, env ...string) *proc {
	t.Helper()
	return startProcess(t, binPath, []string{"run", "-config", path}, env...)
}

// startProcess starts the binary with args and extra environment and
// collects its JSON log lines; the test's end kills it if it still runs,
// and a failed test shows its stderr.
func startProcess(t testing.TB, bin string, args []string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.collect(stderr)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("materializer %s stderr:\n%s", args[0], p.stderr())
		}
	})
	return p
}

func (p *proc) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.eof = true
	p.code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		p.code = ee.ExitCode()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	close(p.done)
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLog waits up to 30 s for a JSON log line whose message is msg and
// returns it decoded.
func (p *proc) waitLog(msg string) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	timer := time.AfterFunc(30*time.Second, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; {
		for ; i < len(p.lines); i++ {
			var m map[string]any
			if json.Unmarshal([]byte(p.lines[i]), &m) == nil && m["message"] == msg {
				return m
			}
		}
		if p.eof || time.Now().After(deadline) {
			p.t.Fatalf("no log line %q (exited: %v); stderr:\n%s", msg, p.eof, strings.Join(p.lines, "\n"))
		}
		p.cond.Wait()
	}
}

// logged returns the first log line with message msg seen so far.
func (p *proc) logged(msg string) (map[string]any, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range p.lines {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			return m, true
		}
	}
	return nil, false
}

// adminURL waits for the admin server and returns its base URL.
func (p *proc) adminURL() string {
	p.t.Helper()
	return "http://" + p.waitLog("admin server listening")["addr"].(string)
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// stopOK sends SIGTERM and fails the test unless the daemon exits 0
// within timeout; what names the stop in the message.
func (p *proc) stopOK(timeout time.Duration, what string) {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(timeout); code != 0 {
		p.t.Fatalf("%s: exit %d, want 0", what, code)
	}
}

// wait waits up to timeout for the process to exit and returns its code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("materializer run did not exit within %v", timeout)
		return -1
	}
}

// get does GET url and returns the status code and body.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, "")
}

// do sends a request with an optional bearer token.
func do(t testing.TB, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// waitStatus polls url until it answers code (deadline 30 s).
func waitStatus(t testing.TB, url string, code int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body := get(t, url)
		if got == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want %d", url, got, body, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
