package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/internal/s3test"
	"materializer/pipeline"
	"materializer/pipeline/nakadi/emulator"
)

// e2eEnv is the outside world of a daemon under test: the Nakadi emulator,
// an S3 gateway (versitygw, a real server) and NATS with JetStream.
type e2eEnv struct {
	nk   *emulator.Server
	ns   *natstest.Server
	s3   *s3test.Versity
	dir  string
	conf string
}

const e2ePrefix = "dwh"

func newE2EEnv(t *testing.T, partitions int, storage string) *e2eEnv {
	t.Helper()
	env := &e2eEnv{dir: t.TempDir()}
	env.nk = e2etest.ArticleEmulator(t, partitions)
	env.ns = natstest.Start(t)
	if storage == "" {
		env.s3 = s3test.StartVersity(t)
		id, secret := env.s3.CredFiles(t)
		storage = fmt.Sprintf("url = %q\nendpoint = %q\naccess_key_id_file = %q\nsecret_access_key_file = %q\n",
			env.s3.URL(e2ePrefix), env.s3.Endpoint, id, secret)
	}
	env.conf = filepath.Join(env.dir, "materializer.toml")
	text := fmt.Sprintf(`
[daemon]
data_dir = %q
admin_listen = "127.0.0.1:0"
log_format = "json"
drain_timeout = "20s"
[nakadi]
url = %q
owning_application = "materializer-e2e"
read_from = "begin"
batch_limit = 200
batch_flush_timeout = "1s"
[storage]
%s
compression = "gzip"
roll_max_rows = 2000
roll_max_age = "1h"
[notify]
nats_url = %q
%s`, filepath.Join(env.dir, "data"), env.nk.URL(), storage, env.ns.URL(), e2etest.ArticleTypeTOML)
	if err := os.WriteFile(env.conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return env
}

// delivered reads what the S3 gateway stored (versitygw keeps objects as
// files under its posix root).
func (env *e2eEnv) delivered(t *testing.T) []e2etest.File {
	return e2etest.ReadDelivered(t, filepath.Join(env.s3.Dir, env.s3.Bucket, e2ePrefix))
}

// status fetches /v1/status.
func adminStatus(t testing.TB, base string) (pipeline.EventTypeStatus, bool) {
	t.Helper()
	code, body := get(t, base+"/v1/status")
	var st struct {
		EventTypes []pipeline.EventTypeStatus `json:"event_types"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.EventTypes) == 0 {
		return pipeline.EventTypeStatus{}, false
	}
	return st.EventTypes[0], true
}

// waitReceived polls /v1/status until n events are received.
func waitReceived(t *testing.T, base string, n int, timeout time.Duration) pipeline.EventTypeStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s, ok := adminStatus(t, base); ok && s.Counters.Received >= uint64(n) {
			return s
		}
		if time.Now().After(deadline) {
			s, _ := adminStatus(t, base)
			t.Fatalf("received %d of %d events", s.Counters.Received, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The full contract against real servers: a
// generated dataset with out-of-order events, duplicates, conflicts and
// malformed events goes through the real binary into versitygw and NATS;
// SIGTERM in the middle of the load (a handover: the sessions open then
// close and are delivered), then a restart on the same data dir; then a
// flush. Every article's newest main row is its highest version, the
// correction rows are exactly the out-of-order and conflicting events, the
// malformed ones are in rejected files, the counters reconcile and every file
// has exactly one notice.
func TestEndToEnd(t *testing.T) {
	env := newE2EEnv(t, 8, "")
	events := e2etest.Generate(42, 500, 20000)
	half := len(events) / 2

	p := startRun(t, env.conf)
	base := p.adminURL()
	waitStatus(t, base+"/readyz", 200)
	e2etest.Publish(t, env.nk, events[:half])
	waitReceived(t, base, half/2, 60*time.Second)
	p.stopOK(30*time.Second, "SIGTERM under load") // in the middle of the load

	p = startRun(t, env.conf)
	base = p.adminURL()
	waitStatus(t, base+"/readyz", 200)
	e2etest.Publish(t, env.nk, events[half:])
	s := waitReceived(t, base, len(events), 120*time.Second)
	if code, body := do(t, "POST", base+"/v1/flush", ""); code != 200 {
		t.Fatalf("flush: %d %s", code, body)
	}
	s, _ = adminStatus(t, base)
	x := e2etest.Expect(events)
	c := s.Counters
	e2etest.CheckCounters(t, events, c)
	if c.Main < uint64(len(x.Newest)) {
		t.Errorf("main = %d, fewer than the %d articles", c.Main, len(x.Newest))
	}
	_, metrics := do(t, "GET", base+"/metrics", "")
	for outcome, want := range map[string]uint64{"received": c.Received, "main": c.Main, "superseded": c.Superseded,
		"duplicate": c.Duplicate, "correction": c.Correction, "rejected": c.Rejected} {
		name := `materializer_events_total{event_type="article.updated",outcome="` + outcome + `"}`
		if got := metricValue(metrics, name); got != float64(want) {
			t.Errorf("%s = %v; /v1/status says %d", name, got, want)
		}
	}
	if got := metricValue(metrics, `materializer_open_sessions{event_type="article.updated"}`); got != 0 {
		t.Errorf("open sessions after the flush: %v", got)
	}
	if got := metricValue(metrics, "materializer_engine_event_to_file_seconds_count"); got == 0 {
		t.Error("no event-to-file latency observed although sessions closed")
	}
	files := env.delivered(t)
	if len(files) < 10 {
		t.Fatalf("only %d files delivered", len(files))
	}
	e2etest.CheckDelivered(t, files, x)
	e2etest.CheckNotices(t, env.ns.URL(), files)
	p.stopOK(30*time.Second, "stop")
}
