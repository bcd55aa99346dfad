package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/pipeline/nakadi/emulator"
)

// fleetRig is a fleet of real daemons (processes) that share one Nakadi
// subscription (the emulator, in this process), one NATS (in this
// process) and one file:// storage target, each with its own data dir and
// admin port. Members come and go while a generated dataset is published;
// at the end every member stops and the delivered files are checked
// against the fleet model (e2etest.CheckFleet).
type fleetRig struct {
	t       *testing.T // the (sub)test the rig works for now (setT)
	root    *testing.T // owns the processes and servers
	rng     *rand.Rand
	nk      *emulator.Server
	ns      *natstest.Server
	dir     string
	storage string
	members []*member

	events    []articles.Event
	published atomic.Int64
	log       []string
}

// member is one daemon of the fleet: its data dir, config and processes.
type member struct {
	name, dir, conf, admin string
	writer                 string  // its data dir's writer id, once known
	procs                  []*proc // every process it ran; the last may be running
	running, drained, left bool    // left: stopped for good
}

const fleetPartitions = 8

func newFleetRig(t *testing.T, seed uint64, events, articles int) *fleetRig {
	t.Helper()
	r := &fleetRig{t: t, root: t, rng: rand.New(rand.NewPCG(seed, seed+2)), dir: t.TempDir()}
	r.nk = e2etest.ArticleEmulator(t, fleetPartitions)
	r.ns = natstest.Start(t)
	r.storage = filepath.Join(r.dir, "storage")
	r.events = e2etest.Generate(seed, articles, events)
	return r
}

// add makes a new member (not started).
func (r *fleetRig) add() *member {
	m := &member{name: fmt.Sprintf("m%d", len(r.members)+1), admin: freeAddr(r.t)}
	m.dir = filepath.Join(r.dir, m.name)
	m.conf = filepath.Join(m.dir, "materializer.toml")
	if err := os.MkdirAll(m.dir, 0o750); err != nil {
		r.t.Fatal(err)
	}
	text := fmt.Sprintf(`
[daemon]
data_dir      = %q
admin_listen  = %q
log_level     = "info"
log_format    = "json"
drain_timeout = "40s"
[nakadi]
url                    = %q
owning_application     = "materializer-fleet"
read_from              = "begin"
batch_limit            = 25
batch_flush_timeout    = "1s"
max_uncommitted_events = 400
commit_timeout         = "3s"
[storage]
url           = "file://%s"
compression   = "gzip"
roll_max_rows = 80
roll_max_age  = "2s"
[notify]
nats_url = %q
%s`, filepath.Join(m.dir, "data"), m.admin, r.nk.URL(), r.storage, r.ns.URL(), e2etest.TrackedArticleType("1s", "4s", ""))
	if err := os.WriteFile(m.conf, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.members = append(r.members, m)
	return m
}

// start starts a member's daemon and waits until it is ready.
func (r *fleetRig) start(m *member) {
	r.t.Helper()
	p := startRun(r.root, m.conf) // the process outlives a subtest
	p.t = r.t
	m.procs = append(m.procs, p)
	m.running, m.drained = true, false
	waitStatus(r.t, p.adminURL()+"/readyz", 200)
	if m.writer == "" {
		m.writer = r.status(m).WriterID
	}
	r.note("%s started (writer %s)", m.name, m.writer)
}

func (m *member) proc() *proc { return m.procs[len(m.procs)-1] }

// setT makes the rig and its processes report to t (a subtest).
func (r *fleetRig) setT(t *testing.T) {
	r.t = t
	for _, m := range r.members {
		for _, p := range m.procs {
			p.t = t
		}
	}
}

// status is a running member's /v1/status.
func (r *fleetRig) status(m *member) statusDoc {
	r.t.Helper()
	code, body := get(r.t, "http://"+m.admin+"/v1/status")
	var st statusDoc
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		r.t.Fatalf("%s: /v1/status: %d %v", m.name, code, err)
	}
	return st
}

// stop sends SIGTERM: the member hands everything over and exits 0, and
// its data dir holds no undelivered work.
func (r *fleetRig) stop(m *member) {
	r.t.Helper()
	start := time.Now()
	m.proc().signal(syscall.SIGTERM)
	if code := m.proc().wait(90 * time.Second); code != 0 {
		r.t.Fatalf("%s: exit %d after SIGTERM; log tail:\n%s", m.name, code, m.proc().crashTail(30))
	}
	m.running = false
	if held := e2etest.ReadHeld(r.t, filepath.Join(m.dir, "data"), "article.updated"); !held.Empty() {
		r.t.Errorf("%s: its data dir holds undelivered work after SIGTERM: %+v", m.name, held)
	}
	r.note("%s stopped by SIGTERM in %v, nothing left in its data dir", m.name, time.Since(start).Round(time.Millisecond))
}

// kill sends SIGKILL.
func (r *fleetRig) kill(m *member) {
	r.t.Helper()
	_ = m.proc().cmd.Process.Signal(syscall.SIGKILL)
	<-m.proc().done
	m.running = false
	r.note("%s killed with -9", m.name)
}

// drain runs `materializer drain` for a member: it ends idle, holding no
// partition and nothing undelivered.
func (r *fleetRig) drain(m *member) {
	r.t.Helper()
	code, out, errOut := runBinary(r.t, "drain", "-config", m.conf)
	if code != 0 {
		r.t.Fatalf("%s: drain: exit %d\n%s%s", m.name, code, out, errOut)
	}
	m.drained = true
	st := r.status(m)
	et := st.EventTypes[0]
	if !st.Drained || et.State != "drained" || et.Counters.Open != 0 || et.OpenFiles != 0 || et.Delivery.PendingFiles != 0 {
		r.t.Fatalf("%s after a drain: %+v", m.name, st)
	}
	r.note("%s drained: %s", m.name, strings.TrimSpace(out))
}

// undrain runs `materializer drain -undo`.
func (r *fleetRig) undrain(m *member) {
	r.t.Helper()
	if code, out, errOut := runBinary(r.t, "drain", "-undo", "-config", m.conf); code != 0 {
		r.t.Fatalf("%s: drain -undo: exit %d\n%s%s", m.name, code, out, errOut)
	}
	m.drained = false
	waitStatus(r.t, "http://"+m.admin+"/readyz", 200)
	r.note("%s undrained", m.name)
}

// subscription is the fleet's one subscription id.
func (r *fleetRig) subscription() string {
	subs := r.nk.Subscriptions()
	if len(subs) != 1 {
		r.t.Fatalf("subscriptions %v, want one", subs)
	}
	return subs[0]
}

// streams maps every stream id any member's process logged to the member.
func (r *fleetRig) streams() map[string]*member {
	out := map[string]*member{}
	for _, m := range r.members {
		for _, p := range m.procs {
			for _, id := range p.loggedStreams() {
				out[id] = m
			}
		}
	}
	return out
}

// loggedStreams returns the stream ids of the process's "stream opened" lines.
func (p *proc) loggedStreams() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, l := range p.lines {
		if !strings.Contains(l, `"message":"stream opened"`) {
			continue
		}
		var m struct {
			StreamID string `json:"stream_id"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.StreamID != "" {
			ids = append(ids, m.StreamID)
		}
	}
	return ids
}

// owners counts the partitions each member owns now (by name); "" counts
// partitions owned by no member's stream or unassigned.
func (r *fleetRig) owners() map[string]int {
	streams := r.streams()
	out := map[string]int{}
	assigned := r.nk.Assignment(r.subscription())
	for p := range fleetPartitions {
		name := ""
		if m := streams[assigned[fmt.Sprintf("article.updated/%d", p)]]; m != nil {
			name = m.name
		}
		out[name]++
	}
	return out
}

// waitOwners waits until the partitions are owned as want says (by member
// name; every partition assigned) and no partition is moving.
func (r *fleetRig) waitOwners(what string, want func(map[string]int) bool) {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		o := r.owners()
		if o[""] == 0 && len(r.nk.Reassigning(r.subscription())) == 0 && want(o) {
			r.note("%s: partitions owned %v", what, o)
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: partitions owned %v, moving %v", what, o, r.nk.Reassigning(r.subscription()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// live are the members running and not drained.
func (r *fleetRig) live() []*member {
	var out []*member
	for _, m := range r.members {
		if m.running && !m.drained {
			out = append(out, m)
		}
	}
	return out
}

// evenly: every live member owns its share of the partitions (and no one
// else owns any).
func (r *fleetRig) evenly(o map[string]int) bool {
	live := r.live()
	if len(live) == 0 {
		return false
	}
	lo, hi := fleetPartitions/len(live), (fleetPartitions+len(live)-1)/len(live)
	n := 0
	for _, m := range live {
		if o[m.name] < lo || o[m.name] > hi {
			return false
		}
		n += o[m.name]
	}
	return n == fleetPartitions
}

// publishAsync publishes the next n events in small batches over about
// span, as producers would, while members come and go.
func (r *fleetRig) publishAsync(n int, span time.Duration) <-chan struct{} {
	from := int(r.published.Load())
	to := min(from+n, len(r.events))
	sizes := randomBatches(r.rng, to-from)
	pauses := make([]time.Duration, len(sizes))
	for i := range pauses {
		pauses[i] = span / time.Duration(max(1, (to-from)/30))
	}
	return publishPaced(r.t, r.nk, r.events, &r.published, from, sizes, pauses)
}

// waitCommitted waits until the subscription's cursors reached every
// partition's newest event: everything published was consumed and
// committed by some member.
func (r *fleetRig) waitCommitted() {
	r.t.Helper()
	sub := r.subscription()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		cs := r.nk.Committed(sub)
		done := len(cs) == fleetPartitions
		for p, c := range cs {
			done = done && c.Offset == r.nk.NewestOffset("article.updated", p)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("not everything committed: %v", cs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *fleetRig) note(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf(format, args...))
}

// finish publishes what is left, waits until every event is committed,
// stops every running member (each hands over and leaves nothing), and
// checks the delivered files against the fleet model and the notices.
func (r *fleetRig) finish() {
	r.t.Helper()
	<-r.publishAsync(len(r.events), time.Second)
	if len(r.live()) == 0 {
		r.t.Fatal("no live member to consume the rest")
	}
	r.waitCommitted()
	for _, m := range r.members {
		if m.running {
			if st := r.status(m); !st.EventTypes[0].Counters.Balanced() {
				r.t.Errorf("%s: counters out of balance: %+v", m.name, st.EventTypes[0].Counters)
			}
			r.stop(m)
		}
	}
	for _, m := range r.members {
		if held := e2etest.ReadHeld(r.t, filepath.Join(m.dir, "data"), "article.updated"); !held.Empty() {
			r.t.Errorf("%s: its data dir holds undelivered work at the end: %+v", m.name, held)
		}
	}
	files := e2etest.ReadDelivered(r.t, r.storage)
	writers, mismatch := map[string]string{}, map[string]bool{}
	for id, m := range r.streams() {
		writers[id] = m.writer
	}
	for _, m := range r.members {
		for _, p := range m.procs {
			if p.crashLogLine("Nakadi resumes from a cursor this daemon did not commit (reset by an operator?): skipping whole batches up to the applied offset; one batch may be applied twice") != "" {
				mismatch[m.writer] = true
			}
		}
	}
	rep := e2etest.CheckFleet(r.t, e2etest.Fleet{Events: r.events, EventType: "article.updated", Partitions: fleetPartitions,
		Emulator: r.nk, Subscription: r.subscription(), Writers: writers, Mismatch: mismatch, Files: files})
	e2etest.CheckNotices(r.t, r.ns.URL(), files)
	r.note("model: %s", rep)
	if len(mismatch) > 0 {
		r.note("redelivery mismatches logged by %v", slices.Sorted(maps.Keys(mismatch)))
	}
}
