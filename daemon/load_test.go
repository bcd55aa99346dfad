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
	"materializer/internal/failpoint"
	"materializer/internal/natstest"
	"materializer/internal/pgtest"
	"materializer/pipeline/nakadi/emulator"
)

// loadEnv is a daemon and a loader with their outside world: the Nakadi
// emulator, NATS, file:// storage and PostgreSQL 15.
type loadEnv struct {
	t       *testing.T
	nk      *emulator.Server
	ns      *natstest.Server
	pg      *pgtest.Cluster
	dir     string
	conf    string
	storage string
}

func newLoadEnv(t *testing.T) *loadEnv {
	t.Helper()
	env := &loadEnv{t: t, nk: e2etest.ArticleEmulator(t, 4), ns: natstest.Start(t), pg: pgtest.Start(t), dir: t.TempDir()}
	env.storage = filepath.Join(env.dir, "storage")
	dsn := filepath.Join(env.dir, "pg.dsn")
	if err := os.WriteFile(dsn, []byte(env.pg.ConnString()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env.conf = filepath.Join(env.dir, "materializer.toml")
	text := fmt.Sprintf(`
[daemon]
data_dir      = %q
admin_listen  = "127.0.0.1:0"
log_format    = "json"
drain_timeout = "20s"
[nakadi]
url                    = %q
owning_application     = "materializer-load"
read_from              = "begin"
batch_limit            = 50
batch_flush_timeout    = "200ms"
commit_timeout         = "5s"
[storage]
url           = "file://%s"
compression   = "gzip"
roll_max_rows = 80
roll_max_age  = "1s"
[notify]
nats_url = %q
[load]
dsn_file     = %q
schema       = "dwh"
history      = true
admin_listen = "127.0.0.1:0"
batch_files  = 8
%s`, filepath.Join(env.dir, "data"), env.nk.URL(), env.storage, env.ns.URL(), dsn, e2etest.LoadedArticleTOML)
	if err := os.WriteFile(env.conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return env
}

// startLoader starts `materializer load` (the failpoint build) with
// extra environment; a killed loader's notices come again after 1 s.
func (env *loadEnv) startLoader(env2 ...string) *proc {
	return startProcess(env.t, crashBinary(env.t), []string{"load", "-config", env.conf},
		append([]string{"MATERIALIZER_LOAD_ACK_WAIT=1s"}, env2...)...)
}

// loaderStatus reads the loader's /v1/status.
func loaderStatus(t testing.TB, base string) (map[string]any, bool) {
	code, body := get(t, base+"/v1/status")
	var st map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		return nil, false
	}
	return st, true
}

// killLoaderAt runs a loader armed to kill itself at the hit-th pass of a
// failpoint and waits until it has.
func (env *loadEnv) killLoaderAt(fp string, hit int) {
	env.t.Helper()
	mark := filepath.Join(env.dir, "mark-"+fp)
	p := env.startLoader(fmt.Sprintf("%s=%s:%d", failpoint.Env, fp, hit), failpoint.Env+"_MARK="+mark)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		env.t.Fatalf("the loader did not reach %s:%d within 2 minutes; log tail:\n%s", fp, hit, p.crashTail(20))
	}
	if got, _ := os.ReadFile(mark); !p.crashKilled() || string(got) != fp {
		env.t.Fatalf("the loader ended (%v) with mark %q, want killed at %s; log tail:\n%s", p.cmd.ProcessState, got, fp, p.crashTail(30))
	}
}

// TestLoadEndToEnd is the full run: generated events → the emulator → the
// real daemon (stopped with SIGTERM and started again in the middle) →
// files and notices → the real loader, killed with SIGKILL at each of its
// failpoints (after the download, after the COPY before the commit, after
// the commit before the ack) and started again. At the end the
// current-state tables equal the model's newest version of every article
// (all columns) and its child rows, the rejected table holds every
// malformed event, the history holds every delivered row exactly once,
// and every delivered file is recorded once.
func TestLoadEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real daemon and loader: not in -short")
	}
	n, rounds := 4000, 1
	if os.Getenv("MATERIALIZER_CRASH") != "" {
		n, rounds = 30000, 4
	}
	env := newLoadEnv(t)
	events := e2etest.Generate(7, 400, n)
	half := len(events) / 2

	d := startRun(t, env.conf)
	base := d.adminURL()
	waitStatus(t, base+"/readyz", 200)
	e2etest.Publish(t, env.nk, events[:half])
	waitReceived(t, base, half/2, time.Minute)
	d.stopOK(30*time.Second, "daemon SIGTERM in the middle of the run")

	d = startRun(t, env.conf)
	base = d.adminURL()
	// Each round publishes its share of the rest, so that files keep
	// coming while the loader is killed at each failpoint in turn.
	fps := []string{failpoint.LoadAfterDownload, failpoint.LoadAfterCopy, failpoint.LoadAfterCommit}
	share := (len(events) - half) / (rounds * len(fps))
	for i := range rounds * len(fps) {
		from := half + i*share
		to := from + share
		if i == rounds*len(fps)-1 {
			to = len(events)
		}
		e2etest.Publish(t, env.nk, events[from:to])
		env.killLoaderAt(fps[i%len(fps)], 2)
	}
	waitReceived(t, base, len(events), 2*time.Minute)
	if code, body := do(t, "POST", base+"/v1/flush", ""); code != 200 {
		t.Fatalf("flush: %d %s", code, body)
	}
	files := e2etest.ReadDelivered(t, env.storage)

	l := env.startLoader()
	lbase := "http://" + l.waitLog("admin server listening")["addr"].(string)
	waitStatus(t, lbase+"/readyz", 200)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, ok := loaderStatus(t, lbase)
		if ok && st["notices_pending"] == 0.0 && loadedCount(t, env) == len(files) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the loader did not load all %d files: status %v", len(files), st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e2etest.CheckLoaded(t, env.pg.ConnString(), "dwh", e2etest.ExpectLoaded(t, events), files)
	st, _ := loaderStatus(t, lbase)
	if st["parked_files"] != 0.0 || st["last_error"] != nil {
		t.Errorf("status after a clean run: parked %v, last error %v", st["parked_files"], st["last_error"])
	}
	_, metrics := get(t, lbase+"/metrics")
	if !strings.Contains(metrics, `materializer_load_files_total{result="loaded"}`) {
		t.Error("no materializer_load_files_total in /metrics")
	}
	l.signal(syscall.SIGHUP) // re-reads the DSN file, keeps loading
	l.waitLog("reloaded: new transactions use the connection string of load.dsn_file")
	l.stopOK(30*time.Second, "loader SIGTERM")
	d.stopOK(30*time.Second, "daemon stop")
}

func loadedCount(t *testing.T, env *loadEnv) int {
	out, err := env.pg.Exec(t.Context(), "SELECT count(*) FROM dwh.materializer_loaded_files")
	if err != nil {
		return -1
	}
	var n int
	fmt.Sscan(strings.TrimSpace(out), &n)
	return n
}
