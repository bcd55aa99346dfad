package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/pipeline/nakadi/emulator"
	"materializer/state"
)

// crashBinary builds materializer with failpoints and the counter-identity
// check (and -race when the tests run with it) next to binPath, once.
var crashBin struct {
	once sync.Once
	path string
	err  error
}

func crashBinary(t *testing.T) string {
	t.Helper()
	crashBin.once.Do(func() {
		crashBin.path = filepath.Join(filepath.Dir(binPath), "materializer-crash")
		args := []string{"build", "-tags", "failpoints,invariants", "-o", crashBin.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			crashBin.err = fmt.Errorf("building the failpoint binary: %v\n%s", err, out)
		}
	})
	if crashBin.err != nil {
		t.Fatal(crashBin.err)
	}
	return crashBin.path
}

// crashRig is one data dir that a daemon is killed on again and again,
// with its outside world: the Nakadi emulator (real HTTP, in this process),
// NATS with JetStream (in this process) and file:// storage. The events
// are generated up front; each run publishes the next part while the
// daemon consumes.
type crashRig struct {
	t       *testing.T
	rng     *rand.Rand
	nk      *emulator.Server
	ns      *natstest.Server
	dir     string
	conf    string
	storage string
	bin     string

	events    []articles.Event
	published atomic.Int64 // events handed to the emulator so far
	runs      int
	config    string   // how the current run is configured
	log       []string // what each run did, for the report
}

const crashPartitions = 4

func newCrashRig(t *testing.T, seed uint64, events, articles int) *crashRig {
	t.Helper()
	r := &crashRig{t: t, rng: rand.New(rand.NewPCG(seed, seed+1)), dir: t.TempDir(), bin: crashBinary(t)}
	r.nk = e2etest.ArticleEmulator(t, crashPartitions)
	r.ns = natstest.Start(t)
	r.storage = filepath.Join(r.dir, "storage")
	r.conf = filepath.Join(r.dir, "materializer.toml")
	r.events = e2etest.Generate(seed, articles, events)
	return r
}

// writeConfig writes the daemon's config: small batches of a size that
// changes from run to run (Nakadi resends with other boundaries than the
// killed daemon saw) and a small window of uncommitted events (many steps,
// many commits), a short commit
// timeout (the killed daemon's stream is gone soon), short sessions (keys
// close many sessions), files that roll by rows and by age (many uploads
// and notices during the run), and an eid column in both tables so the
// checks can tell every row's event. With extraColumn (runs 2, 3, 6, 7,
// ...) the article table has one more column: files opened under the
// other mapping must be sealed before rows of this one are written.
func (r *crashRig) writeConfig(batchLimit int, extraColumn bool) {
	extra := ""
	if extraColumn {
		extra = `{ name = "currency", path = "price.currency" },`
	}
	text := fmt.Sprintf(`
[daemon]
data_dir      = %q
admin_listen  = "127.0.0.1:0"
log_level     = "info"
log_format    = "json"
drain_timeout = "20s"
[nakadi]
url                    = %q
owning_application     = "materializer-crash"
read_from              = "begin"
batch_limit            = %d
batch_flush_timeout    = "1s"
max_uncommitted_events = 300
commit_timeout         = "2s"
[storage]
url           = "file://%s"
compression   = "gzip"
roll_max_rows = 60
roll_max_age  = "1s"
[notify]
nats_url = %q
%s`, filepath.Join(r.dir, "data"), r.nk.URL(), batchLimit, r.storage, r.ns.URL(), e2etest.TrackedArticleType("1s", "3s", extra))
	if err := os.WriteFile(r.conf, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// start starts `materializer run` (the failpoint build) with extra
// environment.
func (r *crashRig) start(env ...string) *proc {
	r.t.Helper()
	r.runs++
	limit, extra := []int{7, 13, 40, 64}[r.rng.IntN(4)], r.runs/2%2 == 1
	r.writeConfig(limit, extra)
	r.config = fmt.Sprintf("batch_limit %d", limit)
	if extra {
		r.config += ", extra column"
	}
	cmd := exec.Command(r.bin, "run", "-config", r.conf)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	p := &proc{t: r.t, cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.collect(stderr)
	r.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// publishAsync publishes the next n events (fewer at the end) in small
// batches of random size, spread over about span, as producers would: the
// daemon reads while events come, so Nakadi batches end at ever other
// offsets and a kill finds applied events not yet committed. The channel
// closes when all are out.
func (r *crashRig) publishAsync(n int, span time.Duration) <-chan struct{} {
	from := int(r.published.Load())
	sizes := randomBatches(r.rng, min(from+n, len(r.events))-from)
	pauses := make([]time.Duration, len(sizes))
	for i := range pauses {
		pauses[i] = time.Duration(r.rng.Int64N(2*int64(span)/int64(len(sizes)) + 1))
	}
	return publishPaced(r.t, r.nk, r.events, &r.published, from, sizes, pauses)
}

// crashLogLine returns the first JSON log line with message msg, if any yet.
func (p *proc) crashLogLine(msg string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.Contains(l, `"message":"`+msg+`"`) {
			return l
		}
	}
	return ""
}

// crashTail returns the last n lines of the process's log.
func (p *proc) crashTail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(0, len(p.lines)-n):], "\n")
}

// crashKilled reports whether the process ended by SIGKILL (ours or its
// failpoint's), and not by a panic or an error exit.
func (p *proc) crashKilled() bool {
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// killAtFailpoint runs the daemon armed to kill itself at the hit-th pass
// of failpoint fp while the next n events are published, and waits until
// it did.
func (r *crashRig) killAtFailpoint(fp string, hit, n int) {
	r.t.Helper()
	mark := filepath.Join(r.dir, fmt.Sprintf("failpoint-%d", r.runs+1))
	start := time.Now()
	p := r.start(fmt.Sprintf("MATERIALIZER_FAILPOINT=%s:%d", fp, hit), "MATERIALIZER_FAILPOINT_MARK="+mark)
	pub := r.publishAsync(n, 1500*time.Millisecond)
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		r.t.Errorf("run %d: failpoint %s:%d did not fire within 90s (killed it instead); log tail:\n%s", r.runs, fp, hit, p.crashTail(20))
	}
	<-pub
	got, _ := os.ReadFile(mark)
	switch {
	case !p.crashKilled():
		r.t.Fatalf("run %d (failpoint %s:%d): the daemon exited on its own (%v); log tail:\n%s", r.runs, fp, hit, p.cmd.ProcessState, p.crashTail(40))
	case string(got) != fp:
		r.t.Errorf("run %d: killed, but failpoint mark says %q, want %q", r.runs, got, fp)
	}
	r.note("run %d (%s): killed at %s:%d after %v (%d events published)", r.runs, r.config, fp, hit, time.Since(start).Round(time.Millisecond), r.published.Load())
}

// killAfter runs the daemon and SIGKILLs it after a random delay while the
// next n events are published; in a third of the runs a flush (closing
// every session, sealing every file) is under way when the kill comes.
// Before the kill it checks that no event was counted twice so far.
func (r *crashRig) killAfter(minDelay, maxDelay time.Duration, n int) {
	r.t.Helper()
	p := r.start()
	delay := minDelay + time.Duration(r.rng.Int64N(int64(maxDelay-minDelay)))
	pub := r.publishAsync(n, delay)
	flushAt := time.Duration(-1)
	if r.rng.IntN(3) == 0 {
		flushAt = time.Duration(r.rng.Int64N(int64(delay)))
	}
	what := "SIGKILL"
	timer := time.NewTimer(delay) // the kill's instant, not a wait for a result
	defer timer.Stop()
	var flush <-chan time.Time
	if flushAt >= 0 {
		flush = time.After(flushAt)
	}
	for wait := true; wait; {
		select {
		case <-p.done:
			r.t.Fatalf("run %d: the daemon exited on its own (%v); log tail:\n%s", r.runs, p.cmd.ProcessState, p.crashTail(40))
		case <-flush:
			if addr := adminAddr(p); addr != "" {
				go func() { _, _ = http.Post(addr+"/v1/flush", "", nil) }() // cut short by the kill
				what = fmt.Sprintf("SIGKILL %v into a flush", (delay - flushAt).Round(time.Millisecond))
			}
		case <-timer.C:
			wait = false
		}
	}
	r.checkNoOvercount(p)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	<-pub
	if !p.crashKilled() {
		r.t.Fatalf("run %d: the daemon exited on its own (%v); log tail:\n%s", r.runs, p.cmd.ProcessState, p.crashTail(40))
	}
	r.note("run %d (%s): %s after %v (%d events published)", r.runs, r.config, what, delay.Round(time.Millisecond), r.published.Load())
}

// adminAddr is the admin API's base URL once the daemon logged it, else "".
func adminAddr(p *proc) string {
	line := p.crashLogLine("admin server listening")
	i := strings.Index(line, `"addr":"`)
	if i < 0 {
		return ""
	}
	addr := line[i+len(`"addr":"`):]
	return "http://" + addr[:strings.IndexByte(addr, '"')]
}

// checkNoOvercount asserts, if the admin API is up, that the daemon has
// not received more events than were published: a redelivered event
// counted again shows here first.
func (r *crashRig) checkNoOvercount(p *proc) {
	r.t.Helper()
	addr := adminAddr(p)
	if addr == "" {
		return
	}
	s, ok := adminStatus(r.t, addr)
	published := r.published.Load() // after the status: it only grows
	if ok && (s.Counters.Received > uint64(published) || !s.Counters.Balanced()) {
		r.t.Errorf("run %d: counters %+v with %d events published", r.runs, s.Counters, published)
	}
}

func (r *crashRig) note(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf(format, args...))
}

// finish runs the daemon once more without a failpoint: it publishes what
// is left, waits until every event is received, flushes (every session
// closes, every file is delivered and announced), stops it with SIGTERM,
// and proves the outcome: every event accounted for exactly
// once, no row twice, every file announced once.
func (r *crashRig) finish() state.Counters {
	r.t.Helper()
	start := time.Now()
	p := r.start()
	base := p.adminURL()
	<-r.publishAsync(len(r.events), time.Second)
	waitReceived(r.t, base, len(r.events), 3*time.Minute)
	if code, body := do(r.t, "POST", base+"/v1/flush", ""); code != 200 {
		r.t.Fatalf("flush: %d %s", code, body)
	}
	s, ok := adminStatus(r.t, base)
	if !ok {
		r.t.Fatal("no status after the flush")
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		r.t.Fatalf("exit %d after SIGTERM; log tail:\n%s", code, p.crashTail(40))
	}
	r.note("run %d (%s): final, flushed, stopped after %v; counters %+v", r.runs, r.config, time.Since(start).Round(time.Millisecond), s.Counters)
	if s.Delivery.PendingFiles != 0 {
		r.t.Errorf("%d files still pending after the flush", s.Delivery.PendingFiles)
	}
	files := e2etest.ReadDelivered(r.t, r.storage)
	e2etest.CheckCounters(r.t, r.events, s.Counters)
	e2etest.CheckDelivered(r.t, files, e2etest.Expect(r.events))
	e2etest.CheckExactlyOnce(r.t, r.events, files, s.Counters)
	e2etest.CheckNotices(r.t, r.ns.URL(), files)
	if left, _ := os.ReadDir(filepath.Join(r.dir, "data", "staging")); len(left) != 0 {
		r.t.Errorf("%d staging files left after the flush: %v", len(left), left)
	}
	return s.Counters
}
