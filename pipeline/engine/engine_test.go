package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"materializer/pipeline/compact"
	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
	"materializer/state"
)

// harness drives an Engine step by step on one goroutine, with a fake clock.
type harness struct {
	t       testing.TB
	dir     string
	clock   time.Time
	db      *state.DB
	e       *Engine
	types   []EventType
	opts    Options
	log     []string
	offsets map[string]int // next offset per partition
	stream  string
	durable []string

	cacheSize int64  // Pebble block cache; small for golden tests
	memTable  uint64 // Pebble memtable size
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, dir: t.TempDir(), clock: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), offsets: map[string]int{}, stream: "s1",
		cacheSize: 8 << 20, memTable: 4 << 20}
}

func offset(n int) string { return fmt.Sprintf("001-0001-%018d", n) }

// eventType builds an event type from "key=id,sub ordering=number order=v
// gap=60s max=600s retention=3600s" and table lines "name col:type:path ...".
func testEventType(t testing.TB, name string, args map[string]string, tables []string) EventType {
	t.Helper()
	dur := func(k, def string) time.Duration {
		v := args[k]
		if v == "" {
			v = def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ordering, err := compact.ParseOrdering(orDefault(args["ordering"], "number"))
	if err != nil {
		t.Fatal(err)
	}
	mustPath := func(s string) flatten.Path {
		p, err := flatten.ParsePath(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	et := EventType{
		Name:         name,
		Ordering:     ordering,
		EIDPath:      mustPath("metadata.eid"),
		OccurredPath: mustPath("metadata.occurred_at"),
		Window:       compact.Window{Gap: dur("gap", "60s"), Max: dur("max", "600s"), Retention: dur("retention", "3600s")},
	}
	keys := strings.Split(orDefault(args["key"], "id"), ",")
	for _, k := range keys {
		et.PartitionKey = append(et.PartitionKey, mustPath(k))
	}
	if ordering != compact.Arrival {
		et.OrderingKey = mustPath(orDefault(args["order"], "v"))
	}
	et.Fingerprint = Fingerprint(keys, args["order"], args["ordering"])
	var specs []flatten.TableSpec
	for _, line := range tables {
		f := strings.Fields(line)
		ts := flatten.TableSpec{Name: f[0]}
		for _, c := range f[1:] {
			p := strings.SplitN(c, ":", 3)
			cs := flatten.ColumnSpec{Name: p[0], Path: p[0]}
			if len(p) > 1 {
				cs.Type = flatten.Type(p[1])
			}
			if len(p) > 2 {
				cs.Path = p[2]
			}
			ts.Columns = append(ts.Columns, cs)
		}
		specs = append(specs, ts)
	}
	m, err := flatten.Compile(specs, flatten.CSV{Delimiter: ',', Header: true})
	if err != nil {
		t.Fatal(err)
	}
	et.Mapping = m
	return et
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (h *harness) open() {
	h.t.Helper()
	db, err := state.Open(filepath.Join(h.dir, "state"), state.Options{CacheSize: h.cacheSize, MemTableSize: h.memTable})
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	opts := h.opts
	opts.DB = db
	opts.StagingDir = filepath.Join(h.dir, "staging")
	opts.Now = func() time.Time { return h.clock }
	opts.Logger = zerolog.Nop()
	if opts.CSV.Delimiter == 0 {
		opts.CSV = flatten.CSV{Delimiter: ',', Header: true}
	}
	types := make([]EventType, len(h.types))
	for i, et := range h.types {
		et.Durable = func(b *nakadi.Batch) {
			h.durable = append(h.durable, fmt.Sprintf("%s/%s@%s", b.Cursor.EventType, b.Cursor.Partition, b.Cursor.Offset))
		}
		types[i] = et
	}
	e, err := New(opts, types)
	if err != nil {
		h.t.Fatal(err)
	}
	e.trace = func(format string, args ...any) { h.log = append(h.log, fmt.Sprintf(format, args...)) }
	if err := e.start(); err != nil {
		h.t.Fatal(err)
	}
	h.e = e
}

func (h *harness) close() {
	if h.e != nil && h.e.stage != nil {
		h.e.stage.Close()
	}
	if h.e != nil && h.e.sessions != nil {
		h.e.sessions.close()
	}
	if h.db != nil {
		_ = h.db.Close()
	}
	h.e, h.db = nil, nil
}

// step runs one step with the given batches and returns the narration.
func (h *harness) step(batches []*nakadi.Batch, extra func(*step) error) string {
	h.t.Helper()
	var jobs []*job
	var p flatten.Parser
	for _, b := range batches {
		j := &job{b: b, et: h.e.types[b.Cursor.EventType], done: make(chan struct{})}
		j.prepare(&p)
		jobs = append(jobs, j)
	}
	h.log, h.durable = nil, nil
	if err := h.e.runStep(context.Background(), jobs, extra); err != nil {
		h.t.Fatal(err)
	}
	out := strings.Join(h.log, "\n")
	if len(h.e.lastSealed) > 0 {
		var names []string
		for _, o := range h.e.lastSealed {
			names = append(names, strings.Replace(o.Key, "."+h.db.WriterID()+".", ".W.", 1))
		}
		out += "\nsealed: " + strings.Join(names, ", ")
	}
	return out
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "config":
		h.close()
		h.dir = t.TempDir()
		h.offsets = map[string]int{}
		args := map[string]string{}
		for _, a := range d.CmdArgs {
			args[a.Key] = strings.Join(a.Vals, ",")
		}
		h.opts = Options{RollMaxBytes: 1 << 30, RollMaxAge: time.Hour, Compression: orDefault(args["compression"], "none"), CompressionLevel: 1, MaxUncommitted: 100}
		if v := args["roll_rows"]; v != "" {
			fmt.Sscan(v, &h.opts.RollMaxRows)
		}
		for k, dst := range map[string]*int{"max_event": &h.opts.Limits.EventBytes, "max_rows": &h.opts.Limits.Rows,
			"max_bytes": &h.opts.Limits.OutputBytes, "max_field": &h.opts.Limits.FieldBytes, "max_raw": &h.opts.MaxRejectedRaw} {
			fmt.Sscan(args[k], dst)
		}
		name := orDefault(args["name"], "article")
		h.types = []EventType{testEventType(t, name, args, strings.Split(strings.TrimSpace(d.Input), "\n"))}
		h.open()
		return ""
	case "ingest":
		return h.ingest(t, d)
	case "advance":
		var s string
		d.ScanArgs(t, "by", &s)
		dd, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		h.clock = h.clock.Add(dd)
		return orDefault(h.step(nil, nil), "nothing due")
	case "flush":
		h.log, h.durable = nil, nil
		sealed, err := h.e.flush(context.Background(), "")
		if err != nil {
			h.t.Fatal(err)
		}
		out := strings.Join(h.log, "\n")
		if len(sealed) > 0 {
			var names []string
			for _, o := range sealed {
				names = append(names, strings.Replace(o.Key, "."+h.db.WriterID()+".", ".W.", 1))
			}
			out += "\nsealed: " + strings.Join(names, ", ")
		}
		return orDefault(strings.TrimPrefix(out, "\n"), "nothing to flush")
	case "lose":
		var p string
		d.ScanArgs(t, "p", &p)
		b := &nakadi.Batch{StreamID: h.stream, Cursor: nakadi.Cursor{EventType: h.types[0].Name, Partition: p}, Lost: true}
		return orDefault(h.step([]*nakadi.Batch{b}, nil), "nothing")
	case "restart":
		h.close()
		h.open()
		return "restarted"
	case "counters":
		var out []string
		for _, et := range h.e.Status().EventTypes {
			c := et.Counters
			out = append(out, fmt.Sprintf("%s: received=%d main=%d superseded=%d duplicate=%d correction=%d rejected=%d open=%d redelivered=%d balanced=%v",
				et.Name, c.Received, c.Main, c.Superseded, c.Duplicate, c.Correction, c.Rejected, c.Open, c.Redelivered, c.Balanced()))
		}
		return strings.Join(out, "\n")
	case "sessions":
		return h.sessions(t)
	case "files":
		return h.files(t)
	case "durable":
		return strings.Join(h.durable, "\n")
	case "rejections":
		return rejections(h.e.opts.Metrics)
	}
	t.Fatalf("unknown command %s", d.Cmd)
	return ""
}

// ingest sends one batch (one line per event) to partition p. Offsets
// continue the partition's sequence unless from= gives the first event's;
// committed= marks the batch as a new stream's first (stream=).
func (h *harness) ingest(t *testing.T, d *datadriven.TestData) string {
	p := "0"
	if d.HasArg("p") {
		d.ScanArgs(t, "p", &p)
	}
	if d.HasArg("stream") {
		d.ScanArgs(t, "stream", &h.stream)
	}
	next := h.offsets[p]
	if d.HasArg("from") {
		d.ScanArgs(t, "from", &next)
	}
	var out []string
	var batches []*nakadi.Batch
	var cur *nakadi.Batch
	for _, line := range strings.Split(d.Input, "\n") {
		if line == "--" || cur == nil { // "--" starts another batch in the same step
			cur = &nakadi.Batch{StreamID: h.stream, Cursor: nakadi.Cursor{EventType: h.types[0].Name, Partition: p}}
			batches = append(batches, cur)
			if line == "--" {
				continue
			}
		}
		cur.Events = append(cur.Events, []byte(line))
		cur.Cursor.Offset = offset(next)
		next++
	}
	if next > h.offsets[p] {
		h.offsets[p] = next
	}
	if d.HasArg("committed") {
		var c int
		d.ScanArgs(t, "committed", &c)
		batches[0].Committed = &nakadi.Cursor{EventType: h.types[0].Name, Partition: p, Offset: offset(c)}
	}
	out = append(out, h.step(batches, nil))
	if len(h.durable) > 0 {
		out = append(out, "durable: "+strings.Join(h.durable, " "))
	} else {
		out = append(out, "durable: none")
	}
	return strings.Join(out, "\n")
}

func (h *harness) sessions(t *testing.T) string {
	var out []string
	for _, sl := range h.e.slotList() {
		err := h.db.Keys(sl.id, func(key, v []byte) error {
			var st compact.KeyState
			if err := st.Decode(v); err != nil {
				return err
			}
			ke := keyEntry{key: key}
			state := "closed"
			if st.Open {
				state = fmt.Sprintf("open since %s, last %s", h.ago(st.OpenedAt), h.ago(st.LastAt))
			} else {
				state += " " + h.ago(st.ClosedAt)
			}
			out = append(out, fmt.Sprintf("p%s %s: %s", sl.part.Partition, ke.describe(), state))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		return "no keys"
	}
	return strings.Join(out, "\n")
}

func (h *harness) ago(ns int64) string {
	return "-" + h.clock.Sub(time.Unix(0, ns)).String()
}

// files prints every staging file (open or sealed, not yet delivered), but
// the session log's segments.
func (h *harness) files(t *testing.T) string {
	dir := filepath.Join(h.dir, "staging")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sealed := map[string]bool{}
	ob, _ := h.db.Outbox()
	for _, o := range ob {
		sealed[o.Name] = true
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), logEventType+".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(n, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		status := "open"
		if sealed[n] {
			status = "sealed"
		}
		n = strings.Replace(n, "."+h.db.WriterID()+".", ".W.", 1)
		out = append(out, fmt.Sprintf("%s (%s):\n%s", n, status, strings.TrimSuffix(string(b), "\n")))
	}
	if len(out) == 0 {
		return "no files"
	}
	return strings.Join(out, "\n")
}

// rejections lists materializer_events_rejected_total by event type and
// reason.
func rejections(m *Metrics) string {
	ch := make(chan prometheus.Metric, 64)
	m.Rejected.Collect(ch)
	close(ch)
	var out []string
	for c := range ch {
		var d dto.Metric
		_ = c.Write(&d)
		var labels []string
		for _, l := range d.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		out = append(out, fmt.Sprintf("%s: %g", strings.Join(labels, " "), d.GetCounter().GetValue()))
	}
	sort.Strings(out)
	return orDefault(strings.Join(out, "\n"), "none")
}

func TestGolden(t *testing.T) {
	datadriven.Walk(t, "testdata/engine", func(t *testing.T, path string) {
		h := newHarness(t)
		defer h.close()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return h.run(t, d) })
	})
}

// closeAll closes every open session of the slot within one step (the
// model test's flush; the engine itself spreads a flush over steps).
func (e *Engine) closeAll(st *step, sl *slot) error {
	_, _, err := e.dueSessions(st, sl, math.MaxInt, math.MaxInt64-1, true)
	st.timers[sl] |= scannedSessions
	return err
}
