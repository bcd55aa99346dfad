package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/internal/s3test"
	"materializer/pipeline/nakadi/emulator"
)

// TestSoakDrainTime measures how long a stop's handover takes with
// realistic state (make soak; docs/performance.md, "A stop's handover"):
// the real binary holds N open sessions and S bytes staged in open files,
// gets SIGTERM, closes every session, seals and delivers every file
// (file:// storage on the same disk, NATS in process) and exits. It reports
// sessions, staged bytes, the handover's own time and the time from
// SIGTERM to exit; the data dir must be empty afterwards.
func TestSoakDrainTime(t *testing.T) {
	if os.Getenv("MATERIALIZER_SOAK") == "" {
		t.Skip("set MATERIALIZER_SOAK=1 (make soak)")
	}
	for _, sc := range []struct {
		sessions int
		staged   int64
		s3       bool // storage is versitygw on loopback, not file://
	}{
		{100_000, 0, false},
		{100_000, 1 << 30, false},
		{100_000, 3 << 30, false},
		{1_000_000, 0, false},
		{100_000, 1 << 30, true},
		{100_000, 3 << 30, true},
	} {
		target := map[bool]string{false: "file", true: "s3"}[sc.s3]
		t.Run(fmt.Sprintf("%d sessions, %s staged, %s", sc.sessions, byteSize(sc.staged), target), func(t *testing.T) {
			measureDrain(t, sc.sessions, sc.staged, sc.s3)
		})
	}
}

func measureDrain(t *testing.T, sessions int, staged int64, s3 bool) {
	nk := e2etest.ArticleEmulator(t, 8)
	ns := natstest.Start(t)
	dir := t.TempDir()
	storage := fmt.Sprintf("url = \"file://%s\"", filepath.Join(dir, "storage"))
	if s3 {
		gw := s3test.StartVersity(t)
		id, secret := gw.CredFiles(t)
		storage = fmt.Sprintf("url = %q\nendpoint = %q\naccess_key_id_file = %q\nsecret_access_key_file = %q",
			gw.URL("dwh"), gw.Endpoint, id, secret)
	}
	path := filepath.Join(dir, "materializer.toml")
	text := fmt.Sprintf(`
[daemon]
data_dir      = %q
admin_listen  = "127.0.0.1:0"
log_format    = "json"
drain_timeout = "30m"
[nakadi]
url                = %q
owning_application = "materializer-soak"
read_from          = "begin"
batch_limit        = 1000
[storage]
%s
compression      = "none"
roll_max_bytes   = "1GiB"
roll_max_age     = "1h"
max_staged_bytes = "64GiB"
[notify]
nats_url = %q
[[event_types]]
name          = "article.updated"
partition_key = ["article_id"]
ordering_key  = "version"
ordering      = "number"
session_gap   = "1h"
session_max   = "2h"
  [[event_types.tables]]
  name    = "article"
  columns = [
    { name = "article_id", path = "article_id", type = "int" },
    { name = "version",    path = "version",    type = "int" },
    { name = "note",       path = "note" },
  ]
`, filepath.Join(dir, "data"), nk.URL(), storage, ns.URL())
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startRun(t, path)
	base := p.adminURL()
	// One event per key opens a session each; corrections (a lower
	// version of a key, with a long note) fill the open staging files.
	published := publishSoak(t, nk, sessions, 1, 0, 200)
	const noteBytes = 8 << 10
	corrections := int(staged / (noteBytes + 40))
	published += publishSoak(t, nk, corrections, 0, sessions, noteBytes)
	s := waitReceived(t, base, published, 30*time.Minute)
	deadline := time.Now().Add(10 * time.Minute)
	for s.Counters.Open != uint64(sessions) || s.Counters.Correction != uint64(corrections) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", s.Counters)
		}
		time.Sleep(100 * time.Millisecond)
		s, _ = adminStatus(t, base)
	}
	stagedNow := s.OpenFileBytes + s.Delivery.PendingBytes
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Minute); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	exit := time.Since(start)
	took := p.waitLog("handover complete: every session closed, every file delivered, every cursor committed")["took"]
	if held := e2etest.ReadHeld(t, filepath.Join(dir, "data"), "article.updated"); !held.Empty() {
		t.Errorf("the data dir holds undelivered work: %+v", held)
	}
	t.Logf("%d open sessions, %s staged (%d open files, %s sealed and waiting): handover %v, SIGTERM to exit %v",
		s.Counters.Open, byteSize(stagedNow), s.OpenFiles, byteSize(s.Delivery.PendingBytes), took, exit.Round(time.Millisecond))
}

// publishSoak publishes n events of the given version with a note of
// noteBytes and a unique eid each: for keys 1 … n, or (keys > 0) round
// over keys 1 … keys. It returns n.
func publishSoak(t *testing.T, nk *emulator.Server, n, version, keys, noteBytes int) int {
	t.Helper()
	note := strings.Repeat("x", noteBytes)
	batch := make([][]byte, 0, 1000)
	for i := range n {
		key := i + 1
		if keys > 0 {
			key = i%keys + 1
		}
		ev, err := json.Marshal(map[string]any{
			"metadata":   map[string]string{"eid": fmt.Sprintf("00000000-0000-4000-%04x-%012x", version, i), "occurred_at": "2026-01-01T00:00:00Z"},
			"article_id": key, "version": version, "note": note,
		})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, ev)
		if len(batch) == cap(batch) || i == n-1 {
			if err := nk.Publish("article.updated", batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return n
}
