package engine

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	dto "github.com/prometheus/client_model/go"

	"materializer/pipeline/nakadi"
	"materializer/state"
)

// The model-based test drives the real engine (through the golden harness:
// synchronous steps, fake clock, real Pebble and staging files) with random
// operations — events of a few keys with colliding versions and eids, clock
// jumps around session_gap/session_max/key_retention, flushes, lost
// partitions, engine restarts, and Nakadi reconnects that resend everything
// after the committed cursor with other batch boundaries — and compares it,
// step by step, with an independent in-memory implementation of
// the compaction rules (docs/design.md) that applies every event exactly once.
//
// MATERIALIZER_MODEL_SEED=N replays one sequence; MATERIALIZER_SOAK=1 runs
// thousands.

const modelET = "article"

// modelWindow is the session window of every sequence.
var modelWindow = struct{ gap, max, retention time.Duration }{10 * time.Second, 35 * time.Second, 120 * time.Second}

// refEvent is one published event.
type refEvent struct {
	n   int // serial, unique, written to the rows
	off int // Nakadi offset within its partition
	key string
	v   int
	eid string
	bad bool // rejected (ordering value not a number)
	raw []byte
}

// refKey is the reference's state of one key.
type refKey struct {
	hasHi                      bool
	hi                         int
	hiEID                      string
	open                       bool
	openedAt, lastAt, closedAt time.Time
	best                       int // n of the open session's best event
}

// reference is docs/design.md written as plainly as possible.
type reference struct {
	keys     map[string]*refKey
	part     map[string]string // key → partition
	counters state.Counters
	main     map[string][]int // key → n of each session's best, in close order
	corr     map[string][]int // key → n of each correction
	rejected map[string][]int // partition → n of each rejected event
	closed   []string         // keys closed in the current step
}

func newReference() *reference {
	return &reference{keys: map[string]*refKey{}, part: map[string]string{}, main: map[string][]int{},
		corr: map[string][]int{}, rejected: map[string][]int{}}
}

// apply classifies one event at processing time now.
func (r *reference) apply(p string, ev refEvent, now time.Time) string {
	r.counters.Received++
	if ev.bad {
		r.counters.Rejected++
		r.rejected[p] = append(r.rejected[p], ev.n)
		return "rejected"
	}
	r.part[ev.key] = p
	k := r.keys[ev.key]
	if k == nil {
		k = &refKey{}
		r.keys[ev.key] = k
	}
	if k.hasHi && !k.open && !now.Before(k.closedAt.Add(modelWindow.retention)) {
		*k = refKey{} // hi(k) forgotten after key_retention
	}
	if k.hasHi {
		switch {
		case ev.v < k.hi, ev.v == k.hi && ev.eid != k.hiEID:
			r.counters.Correction++
			r.corr[ev.key] = append(r.corr[ev.key], ev.n)
			return "correction"
		case ev.v == k.hi:
			r.counters.Duplicate++
			return "duplicate"
		}
	}
	outcome := "opened"
	if k.open {
		outcome = "replaced"
		r.counters.Superseded++
	} else {
		r.counters.Open++
		k.open, k.openedAt = true, now
	}
	k.hasHi, k.hi, k.hiEID, k.lastAt, k.best = true, ev.v, ev.eid, now, ev.n
	return outcome
}

func (r *reference) close(key string, now time.Time) {
	k := r.keys[key]
	r.main[key] = append(r.main[key], k.best)
	r.counters.Open--
	r.counters.Main++
	k.open, k.closedAt = false, now
	r.closed = append(r.closed, key)
}

// timers closes every session whose gap or max passed.
func (r *reference) timers(now time.Time) {
	for _, key := range r.sortedKeys() {
		k := r.keys[key]
		deadline := k.lastAt.Add(modelWindow.gap)
		if lim := k.openedAt.Add(modelWindow.max); lim.Before(deadline) {
			deadline = lim
		}
		if k.open && !deadline.After(now) {
			r.close(key, now)
		}
	}
}

// closeAll closes the open sessions of partition p ("" = all).
func (r *reference) closeAll(p string, now time.Time) {
	for _, key := range r.sortedKeys() {
		if r.keys[key].open && (p == "" || r.part[key] == p) {
			r.close(key, now)
		}
	}
}

func (r *reference) sortedKeys() []string {
	keys := make([]string, 0, len(r.keys))
	for k := range r.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// modelPart is one partition as Nakadi and the consumer see it.
type modelPart struct {
	id        string
	log       []refEvent // every published event, by offset
	nextOff   int
	stream    string
	sent      int  // offset of the last event sent on the stream (-1: none)
	fresh     bool // the stream's next batch is its first: it carries Committed
	committed int  // Nakadi's committed offset (-1: before the first)
	ready     []int
	queue     []queued // handed-out batches of the stream not yet ready
	applied   int      // the reference's applied offset
}

// queued is a batch in the consumer's commit tracker.
type queued struct {
	off     int
	durable bool
}

// modelRun is one random sequence.
type modelRun struct {
	t       *testing.T
	rng     *rand.Rand
	h       *harness
	ref     *reference
	parts   []*modelPart
	serial  int
	streams int
	window  int  // Nakadi's max_uncommitted_events (and the engine's)
	extra   bool // the table has the extra column
	ops     []string
}

func nakadiOffset(n int) string {
	if n < 0 {
		return "001-0001--1"
	}
	return offset(n)
}

func newModelRun(t *testing.T, seed uint64) *modelRun {
	m := &modelRun{t: t, rng: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)), ref: newReference()}
	m.window = 4 + m.rng.IntN(12)
	h := newHarness(t)
	h.cacheSize, h.memTable = 1<<20, 256<<10 // small: a sequence opens Pebble a few times
	// fsync is free on tmpfs
	if shm, err := os.MkdirTemp("/dev/shm", "model-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		h.dir = shm
	}
	compression := []string{"none", "gzip"}[m.rng.IntN(2)]
	h.opts = Options{RollMaxBytes: 1 << 30, RollMaxRows: int64(1 + m.rng.IntN(6)), RollMaxAge: time.Hour,
		Compression: compression, CompressionLevel: 1, MaxUncommitted: m.window,
		StepEvents: []int{1, 2, 8192}[m.rng.IntN(3)]} // small: due timers spread over several steps
	h.types = []EventType{modelEventType(t, false)}
	h.open()
	t.Cleanup(h.close)
	m.h = h
	for i := range 2 {
		m.parts = append(m.parts, &modelPart{id: strconv.Itoa(i), sent: -1, committed: -1, applied: -1, fresh: true})
	}
	for _, p := range m.parts {
		m.newStream(p)
	}
	return m
}

// modelEventType is the event type of every sequence; extra adds a column
// to its table (a mapping change between restarts).
func modelEventType(t *testing.T, extra bool) EventType {
	table := "t id v n:int"
	if extra {
		table += " x"
	}
	return testEventType(t, modelET, map[string]string{
		"key": "id", "order": "v", "ordering": "number",
		"gap": modelWindow.gap.String(), "max": modelWindow.max.String(), "retention": modelWindow.retention.String(),
	}, []string{table})
}

func (m *modelRun) logf(format string, args ...any) {
	m.ops = append(m.ops, fmt.Sprintf("%s  ", m.h.clock.Format("15:04:05"))+fmt.Sprintf(format, args...))
}

// fail reports a mismatch with the operations that led to it.
func (m *modelRun) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("%s\noperations:\n  %s", fmt.Sprintf(format, args...), strings.Join(m.ops, "\n  "))
}

// newStream makes the partition's next batches come from a new stream that
// resumes after Nakadi's committed cursor.
func (m *modelRun) newStream(p *modelPart) {
	m.streams++
	p.stream = fmt.Sprintf("s%d", m.streams)
	p.fresh = true
	p.sent = p.committed
	p.queue = nil
}

// newEvent publishes one random event on a random key of partition p.
func (m *modelRun) newEvent(p *modelPart) refEvent {
	m.serial++
	pi, _ := strconv.Atoi(p.id)
	key := fmt.Sprintf("k%d", pi+2*m.rng.IntN(3)) // keys k0,k2,k4 on p0; k1,k3,k5 on p1
	ev := refEvent{n: m.serial, off: p.nextOff, key: key, v: m.rng.IntN(6), eid: string(rune('a' + m.rng.IntN(3)))}
	if m.rng.IntN(25) == 0 {
		ev.bad = true
		ev.raw = fmt.Appendf(nil, `{"id":%q,"v":"x","n":%d,"metadata":{"eid":%q}}`, ev.key, ev.n, ev.eid)
	} else {
		ev.raw = fmt.Appendf(nil, `{"id":%q,"v":%d,"n":%d,"metadata":{"eid":%q}}`, ev.key, ev.v, ev.n, ev.eid)
	}
	p.nextOff += 1 + max(0, m.rng.IntN(8)-5) // offsets can have gaps
	p.log = append(p.log, ev)
	return ev
}

// uncommitted counts the events sent after the committed cursor.
func (p *modelPart) uncommitted(upTo int) int {
	n := 0
	for _, ev := range p.log {
		if ev.off > p.committed && ev.off <= upTo {
			n++
		}
	}
	return n
}

// nextBatch builds the partition's next batch: the rest of the log after
// what the stream sent (a redelivery), topped up with new events, within
// Nakadi's window of uncommitted events. nil when the window is full.
func (m *modelRun) nextBatch(p *modelPart) *nakadi.Batch {
	size := 1 + m.rng.IntN(5)
	var evs []refEvent
	for _, ev := range p.log {
		if ev.off > p.sent && len(evs) < size {
			evs = append(evs, ev)
		}
	}
	for len(evs) < size && (len(evs) == 0 || m.rng.IntN(2) == 0) {
		evs = append(evs, m.newEvent(p))
	}
	for len(evs) > 0 && p.uncommitted(evs[len(evs)-1].off) > m.window {
		evs = evs[:len(evs)-1]
	}
	if len(evs) == 0 {
		return nil
	}
	b := &nakadi.Batch{StreamID: p.stream, Cursor: nakadi.Cursor{EventType: modelET, Partition: p.id, Offset: nakadiOffset(evs[len(evs)-1].off)}}
	for _, ev := range evs {
		b.Events = append(b.Events, ev.raw)
	}
	if p.fresh {
		b.Committed = &nakadi.Cursor{EventType: modelET, Partition: p.id, Offset: nakadiOffset(p.committed)}
		p.fresh = false
	}
	p.sent = evs[len(evs)-1].off
	p.queue = append(p.queue, queued{off: p.sent})
	return b
}

// expectBatch applies a batch to the reference and returns the trace lines
// the engine must print for it.
func (m *modelRun) expectBatch(p *modelPart, b *nakadi.Batch) []string {
	var out []string
	skip := 0
	for skip < len(b.Events) && m.eventAt(p, b, skip).off <= p.applied {
		skip++ // applied before: a redelivered prefix
	}
	if skip > 0 {
		m.ref.counters.Redelivered += uint64(skip)
		out = append(out, fmt.Sprintf("%s/%s skip %d redelivered", modelET, p.id, skip))
	}
	for i := skip; i < len(b.Events); i++ {
		ev := m.eventAt(p, b, i)
		p.applied = ev.off
		out = append(out, fmt.Sprintf("%s/%s event %d: %s", modelET, p.id, i, m.ref.apply(p.id, ev, m.h.clock)))
	}
	return out
}

// eventAt finds the i-th event of a batch in the partition's log.
func (m *modelRun) eventAt(p *modelPart, b *nakadi.Batch, i int) refEvent {
	for _, ev := range p.log {
		if bytes.Equal(ev.raw, b.Events[i]) {
			return ev
		}
	}
	m.fail("event %s not in the log", b.Events[i])
	return refEvent{}
}

// step runs one engine step and compares it with the reference.
func (m *modelRun) step(batches []*nakadi.Batch, parts []*modelPart, extra func(*step) error, refExtra func()) {
	m.t.Helper()
	m.ref.closed = nil
	var want []string
	for i, b := range batches {
		if b.Lost {
			m.ref.closeAll(parts[i].id, m.h.clock)
			continue
		}
		want = append(want, m.expectBatch(parts[i], b)...)
	}
	if refExtra != nil {
		refExtra()
	}
	m.ref.timers(m.h.clock)
	m.h.step(batches, extra)
	log, durable := m.h.log, m.h.durable
	for m.h.e.more { // timers left for the next step: the loop runs it at once
		m.h.step(nil, nil)
		log, durable = append(log, m.h.log...), append(durable, m.h.durable...)
	}
	m.h.durable = durable
	var got, closed []string
	for _, l := range log {
		switch {
		case strings.Contains(l, " event "):
			if i := strings.Index(l, ": rejected"); i >= 0 {
				l = l[:i+len(": rejected")]
			}
			got = append(got, l)
		case strings.Contains(l, " skip "):
			got = append(got, l)
		case strings.Contains(l, " close "):
			closed = append(closed, l[strings.LastIndexByte(l, ' ')+1:])
		}
	}
	if !slices.Equal(got, want) {
		m.fail("step outcomes differ\nengine:\n  %s\nreference:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	sort.Strings(closed)
	sort.Strings(m.ref.closed)
	if !slices.Equal(closed, m.ref.closed) {
		m.fail("sessions closed: engine %v, reference %v", closed, m.ref.closed)
	}
	m.trackDurable()
	m.checkCounters()
}

// trackDurable feeds the step's durable batches to a model of the
// consumer's commit tracker: a cursor becomes committable once its batch
// and every earlier batch of the stream are durable, checked after each
// Durable call (the consumer may commit between two calls).
func (m *modelRun) trackDurable() {
	for _, d := range m.h.durable {
		pid := d[strings.IndexByte(d, '/')+1 : strings.IndexByte(d, '@')]
		off := d[strings.IndexByte(d, '@')+1:]
		p := m.parts[pidIndex(pid)]
		found := false
		for i := range p.queue {
			if nakadiOffset(p.queue[i].off) == off && !p.queue[i].durable {
				p.queue[i].durable, found = true, true
				break
			}
		}
		if !found {
			m.fail("durable %s: no such batch in flight", d)
		}
		moved, ready := false, 0
		for len(p.queue) > 0 && p.queue[0].durable {
			moved, ready = true, p.queue[0].off
			p.queue = p.queue[1:]
		}
		if moved {
			p.ready = append(p.ready, ready)
		}
	}
}

func pidIndex(p string) int {
	i, _ := strconv.Atoi(p)
	return i
}

func (m *modelRun) checkCounters() {
	m.t.Helper()
	got, err := m.h.db.Counters(modelET)
	if err != nil {
		m.t.Fatal(err)
	}
	if got != m.ref.counters {
		m.fail("counters differ\nengine:    %+v\nreference: %+v", got, m.ref.counters)
	}
	var mm dto.Metric
	if err := m.h.e.opts.Metrics.RedeliveryMismatch.Write(&mm); err != nil {
		m.t.Fatal(err)
	}
	if n := mm.GetCounter().GetValue(); n != 0 {
		m.fail("%v redelivery mismatches (window %d); rings:\n%s", n, m.window, m.rings())
	}
}

// rings describes the engine's ring of every partition.
func (m *modelRun) rings() string {
	var out []string
	for _, sl := range m.h.e.slotList() {
		var rs []string
		for _, r := range sl.ring {
			rs = append(rs, fmt.Sprintf("%s:%d:%s", strings.TrimLeft(r.Offset[9:], "0"), r.Count, r.FirstEID))
		}
		out = append(out, fmt.Sprintf("p%s applied %s: %s", sl.part.Partition, sl.cur.Offset, strings.Join(rs, " ")))
	}
	return strings.Join(out, "\n")
}

// commit moves Nakadi's committed cursor of p to a cursor the consumer
// could have committed by now.
func (m *modelRun) commit(p *modelPart) {
	var cands []int
	for _, off := range p.ready {
		if off > p.committed {
			cands = append(cands, off)
		}
	}
	if len(cands) == 0 {
		return
	}
	c := cands[len(cands)-1]
	if m.rng.IntN(3) == 0 {
		c = cands[m.rng.IntN(len(cands))]
	}
	m.logf("p%s: Nakadi commits %d", p.id, c)
	p.committed = c
	if p.fresh {
		p.sent = c // a new stream gets the partition once the old one's commits are in
	}
}

// op runs one random operation.
func (m *modelRun) op() {
	clock := func(d time.Duration) { m.h.clock = m.h.clock.Add(d) }
	switch r := m.rng.IntN(100); {
	case r < 50:
		n := 1 + m.rng.IntN(3)
		var batches []*nakadi.Batch
		var parts []*modelPart
		for range n {
			p := m.parts[m.rng.IntN(len(m.parts))]
			if b := m.nextBatch(p); b != nil {
				batches = append(batches, b)
				parts = append(parts, p)
				m.logf("p%s %s batch ..%s committed=%v: %s", p.id, b.StreamID, b.Cursor.Offset[9:], committedOf(b), b.Events)
			}
		}
		m.step(batches, parts, nil, nil)
	case r < 65:
		clock(m.jump())
		m.logf("advance")
		m.step(nil, nil, nil, nil)
	case r < 70:
		clock(m.jump())
		m.logf("clock moves (no step)")
	case r < 80:
		m.commit(m.parts[m.rng.IntN(len(m.parts))])
	case r < 85:
		p := m.parts[m.rng.IntN(len(m.parts))]
		m.logf("p%s: reconnect (committed %d)", p.id, p.committed)
		m.newStream(p)
	case r < 90:
		m.logf("flush")
		m.step(nil, nil, m.flushExtra, func() { m.ref.closeAll("", m.h.clock) })
	case r < 93:
		p := m.parts[m.rng.IntN(len(m.parts))]
		m.logf("p%s: lost", p.id)
		m.step([]*nakadi.Batch{{StreamID: p.stream, Cursor: nakadi.Cursor{EventType: modelET, Partition: p.id}, Lost: true}},
			[]*modelPart{p}, nil, nil)
		p.ready = nil // commits for it now fail with 422
		m.newStream(p)
	default:
		m.h.close()
		if m.rng.IntN(3) == 0 {
			m.extra = !m.extra // a column more or less: open files are sealed first
			m.h.types = []EventType{modelEventType(m.t, m.extra)}
		}
		m.logf("restart (extra column: %v)", m.extra)
		m.h.open()
		for _, p := range m.parts {
			p.ready = nil // the consumer died with what it had not committed
			m.newStream(p)
		}
	}
}

func committedOf(b *nakadi.Batch) string {
	if b.Committed == nil {
		return "-"
	}
	return b.Committed.Offset
}

func (m *modelRun) flushExtra(st *step) error {
	st.sealAll = "*"
	for _, sl := range m.h.e.slotList() {
		if err := m.h.e.closeAll(st, sl); err != nil {
			return err
		}
	}
	return nil
}

// jump picks a clock advance around the window's boundaries.
func (m *modelRun) jump() time.Duration {
	w := modelWindow
	near := []time.Duration{w.gap, w.max, w.retention, w.retention + w.gap}
	switch m.rng.IntN(4) {
	case 0:
		return time.Duration(m.rng.IntN(3)) * time.Second
	case 1:
		return near[m.rng.IntN(len(near))] + time.Duration(m.rng.IntN(3)-1)*time.Second
	default:
		return time.Duration(m.rng.Int64N(int64(w.gap)))
	}
}

// finish flushes and compares the files' rows with the reference.
func (m *modelRun) finish() {
	m.logf("final flush")
	m.step(nil, nil, m.flushExtra, func() { m.ref.closeAll("", m.h.clock) })
	main, corr, rejected := m.readRows()
	for _, key := range m.ref.sortedKeys() {
		if !slices.Equal(main[key], m.ref.main[key]) {
			m.fail("key %s: main rows (event serials) %v, reference %v", key, main[key], m.ref.main[key])
		}
		if !slices.Equal(corr[key], m.ref.corr[key]) {
			m.fail("key %s: correction rows %v, reference %v", key, corr[key], m.ref.corr[key])
		}
	}
	if len(main) > len(m.ref.main) || len(corr) > len(m.ref.corr) {
		m.fail("rows of keys the reference never emitted: main %v corr %v", main, corr)
	}
	for _, p := range m.parts {
		if !slices.Equal(rejected[p.id], m.ref.rejected[p.id]) {
			m.fail("p%s: rejected rows %v, reference %v", p.id, rejected[p.id], m.ref.rejected[p.id])
		}
	}
}

var serialInRaw = regexp.MustCompile(`"n":(\d+)`)

// readRows reads every staging file (all sealed after the final flush) in
// sequence order: main and correction serials per key, rejected serials
// per partition.
func (m *modelRun) readRows() (main, corr map[string][]int, rejected map[string][]int) {
	main, corr, rejected = map[string][]int{}, map[string][]int{}, map[string][]int{}
	dir := filepath.Join(m.h.dir, "staging")
	entries, err := os.ReadDir(dir)
	if err != nil {
		m.t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), logEventType+".") { // not the session log
			names = append(names, e.Name()) // the seq is zero-padded: name order is seq order
		}
	}
	sort.Strings(names)
	for _, name := range names {
		f := strings.Split(name, ".") // article.t.main.p0.W.0000000001.csv[.gz]
		kind, part := f[2], strings.TrimPrefix(f[3], "p")
		for _, rec := range m.readCSV(filepath.Join(dir, name))[1:] {
			switch kind {
			case "main", "correction":
				n, _ := strconv.Atoi(rec[2])
				if kind == "main" {
					main[rec[0]] = append(main[rec[0]], n)
				} else {
					corr[rec[0]] = append(corr[rec[0]], n)
				}
			case "rejected":
				sm := serialInRaw.FindStringSubmatch(rec[3])
				n, _ := strconv.Atoi(sm[1])
				rejected[part] = append(rejected[part], n)
			}
		}
	}
	return main, corr, rejected
}

func (m *modelRun) readCSV(path string) [][]string {
	b, err := os.ReadFile(path)
	if err != nil {
		m.t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			m.t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			m.t.Fatal(err)
		}
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll() // every row as many fields as the header
	if err != nil {
		m.t.Fatalf("%s: %v", path, err)
	}
	return recs
}

// modelSequences is how many random sequences run and how many operations
// each: a few hundred normally (fewer under -race), thousands under
// MATERIALIZER_SOAK=1.
func modelSequences() (n, ops int) {
	if os.Getenv("MATERIALIZER_SOAK") != "" {
		return 5000, 120
	}
	if testing.Short() {
		return 50, 60
	}
	if raceBuild {
		return 120, 60
	}
	return 300, 60
}

func TestModel(t *testing.T) {
	n, ops := modelSequences()
	if v := os.Getenv("MATERIALIZER_MODEL_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		runModel(t, seed, ops)
		return
	}
	base := uint64(time.Now().UnixNano())
	for i := range n {
		seed := base + uint64(i)
		if !t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runModel(t, seed, ops) }) {
			t.Fatalf("replay: MATERIALIZER_MODEL_SEED=%d%s go test ./pipeline/ -run 'TestModel$' -v", seed, soakEnv())
		}
	}
}

func soakEnv() string {
	if os.Getenv("MATERIALIZER_SOAK") != "" {
		return " MATERIALIZER_SOAK=1"
	}
	return ""
}

func runModel(t *testing.T, seed uint64, ops int) {
	m := newModelRun(t, seed)
	for range ops {
		m.op()
	}
	m.finish()
}
