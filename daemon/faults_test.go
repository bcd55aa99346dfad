package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"materializer/internal/articles"
	"materializer/internal/disktest"
	"materializer/internal/e2etest"
)

// malformed returns the malformed events among events (each opens a
// rejected file where none is open).
func malformed(events []articles.Event) []articles.Event {
	var out []articles.Event
	for _, a := range events {
		if a.Kind == "malformed" {
			out = append(out, a)
		}
	}
	return out
}

// A persistent I/O error (the staging directory replaced by a file: no
// staging file can be created, the stage cannot be recovered) is retried a
// bounded number of times; then the daemon goes not ready and exits 1 with
// the cause in its last line, so that systemd restarts it. Before, it
// retried forever, feeding the watchdog.
func TestPersistentStepFailureExits(t *testing.T) {
	nk := e2etest.ArticleEmulator(t, 2)
	dir := t.TempDir()
	path, _ := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL()})
	p := startRun(t, path)
	base := p.adminURL()
	waitStatus(t, base+"/readyz", 200)
	events := e2etest.Generate(3, 50, 2000)
	e2etest.Publish(t, nk, events[:1000])
	waitReceived(t, base, 1000, time.Minute)

	staging := filepath.Join(dir, "data", "staging")
	if err := os.Rename(staging, staging+".gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(staging, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	e2etest.Publish(t, nk, malformed(events[1000:])) // a new rejected file is needed
	do(t, "POST", base+"/v1/flush", "")              // and main files: both fail
	p.waitLog("step failed; recovering staging files and state, then retrying")
	p.waitLog("pipeline not ready")
	code := p.wait(2 * time.Minute)
	give := p.waitLog("giving up: the engine stops, and the process with it")
	out := strings.Split(strings.TrimSpace(p.stderr()), "\n")
	last := out[len(out)-1]
	if code != 1 || !strings.Contains(last, "materializer: run:") || !strings.Contains(last, "a processing step keeps failing") ||
		!strings.Contains(last, "10 attempts in a row failed") || !strings.Contains(last, "not a directory") {
		t.Fatalf("exit %d, last line %q", code, last)
	}
	if !strings.Contains(give["error"].(string), "not a directory") {
		t.Errorf("giving up without the cause: %v", give)
	}
}

// A real full disk: the staging directory is a small tmpfs that the test
// fills while events flow through the real daemon. The daemon stops
// reading, says why in its log, metrics, readiness and status, stays
// consistent, and resumes by itself once the test frees space; nothing is
// lost: every event is received once and the delivered files are exactly
// what compaction says.
func TestFullDiskPausesAndResumes(t *testing.T) {
	nk := e2etest.ArticleEmulator(t, 4)
	dir := t.TempDir()
	path, _ := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL()})
	staging := filepath.Join(dir, "data", "staging")
	disktest.MountTmpfs(t, staging, "64m")             // room for the session log once the filler goes
	filler := filepath.Join(staging, "fill", "filler") // in a directory: recovery removes stray files only
	disktest.Fill(t, filler, 24<<10)

	p := startRun(t, path)
	base := p.adminURL()
	waitStatus(t, base+"/readyz", 200)
	events := e2etest.Generate(5, 400, 12000)
	half := len(events) / 2
	e2etest.Publish(t, nk, events[:half])
	flushing := make(chan struct{})
	go func() { // main rows of 400 articles fill the disk; the flush finishes once space is back
		defer close(flushing)
		if resp, err := (&http.Client{Timeout: 3 * time.Minute}).Post(base+"/v1/flush", "", nil); err == nil {
			resp.Body.Close()
		}
	}()
	p.waitLog("staging disk full: consuming paused, not ready; the step is retried until space returns (free space, or let delivery remove sent files)")
	p.waitLog("backpressure: the staging disk is full; consuming paused until space returns")
	waitStatus(t, base+"/readyz", 503)
	_, metrics := get(t, base+"/metrics")
	if metricValue(metrics, "materializer_engine_disk_full") != 1 || metricValue(metrics, "materializer_backpressure") != 1 {
		t.Fatalf("metrics while the disk is full:\n%s", grepLines(metrics, "disk_full", "backpressure "))
	}
	_, body := get(t, base+"/v1/status")
	var st statusDoc
	if err := json.Unmarshal([]byte(body), &st); err != nil || !st.DiskFull || !strings.Contains(st.StepError, "no space left on device") ||
		st.EventTypes[0].State != "disk full" {
		t.Fatalf("status while the disk is full: %s", body)
	}
	if err := os.Remove(filler); err != nil { // space returns
		t.Fatal(err)
	}
	p.waitLog("the failing step succeeded: processing again")
	<-flushing
	waitStatus(t, base+"/readyz", 200)
	e2etest.Publish(t, nk, events[half:])
	waitReceived(t, base, len(events), 2*time.Minute)
	if code, body := flushWithin(t, base, 2*time.Minute); code != 200 {
		t.Fatalf("flush: %d %s", code, body)
	}
	s, _ := adminStatus(t, base)
	x := e2etest.Expect(events)
	if c := s.Counters; c.Received != uint64(len(events)) || !c.Balanced() || c.Open != 0 || c.Main < uint64(len(x.Newest)) ||
		c.Rejected != uint64(x.Rejected) || c.Duplicate != uint64(x.Duplicates) {
		t.Errorf("counters %+v; want received=%d, main ≥ %d, rejected=%d duplicate=%d", c, len(events), len(x.Newest), x.Rejected, x.Duplicates)
	}
	e2etest.CheckDelivered(t, e2etest.ReadDelivered(t, filepath.Join(dir, "storage")), x)
	p.stopOK(30*time.Second, "stop")
}

// flushWithin posts /v1/flush and gives up after d (0 and the error when
// it did not answer).
func flushWithin(t *testing.T, base string, d time.Duration) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: d}).Post(base+"/v1/flush", "", nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func grepLines(text string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
