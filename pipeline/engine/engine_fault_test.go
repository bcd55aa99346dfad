package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"materializer/internal/disktest"
	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
)

// A step that fails (here: the staging directory is replaced by a file, so
// a new staging file cannot be created) is retried from recovered state;
// while even recovery fails, no step runs on a half-recovered engine. Once
// the disk is back, the step applies exactly once and nothing is lost.
func TestFailedStepAndFailedRecoveryAreRetried(t *testing.T) {
	h := newHarness(t)
	h.opts = Options{RollMaxBytes: 1 << 30, RollMaxAge: time.Hour, Compression: "gzip", CompressionLevel: 1, MaxUncommitted: 100}
	h.types = []EventType{testEventType(t, "article", map[string]string{}, []string{"t id:int v:int"})}
	h.open()
	defer h.close()
	h.e.trace = nil
	reject := func(p string) *nakadi.Batch {
		h.offsets[p]++
		return &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article", Partition: p, Offset: offset(h.offsets[p])},
			Events: [][]byte{[]byte(`{"id":"not an int","v":1}`)}}
	}
	h.step([]*nakadi.Batch{reject("0")}, nil)

	defer breakStaging(t, h, 3)() // the operator frees the disk after a few failed attempts
	b := reject("1")              // opens a new staging file: fails while the directory is gone
	var p flatten.Parser
	j := &job{b: b, et: h.e.types["article"], done: make(chan struct{})}
	j.prepare(&p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.e.runStep(ctx, []*job{j}, nil); err != nil {
		t.Fatal(err)
	}
	c := h.e.Status().EventTypes[0].Counters
	if c.Received != 2 || c.Rejected != 2 || !c.Balanced() {
		t.Fatalf("counters %+v", c)
	}
	out := h.files(t)
	for _, p := range []string{"p0", "p1"} {
		if strings.Count(out, "rejected."+p) != 1 || !strings.Contains(out, `not an int`) {
			t.Fatalf("staging files after recovery:\n%s", out)
		}
	}
	if strings.Count(out, `"{""id"":""not an int""`) != 2 {
		t.Fatalf("each rejected event must be written once:\n%s", out)
	}
}

// metricValue reads a counter's or a gauge's value.
func metricValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	if m.Gauge != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

// breakStaging replaces the staging directory with a file, so that no new
// staging file can be created (nor the stage recovered), until the step
// errors counter reaches n; then it puts the directory back. The returned
// function waits for that.
func breakStaging(t *testing.T, h *harness, n float64) (wait func()) {
	t.Helper()
	staging := filepath.Join(h.dir, "staging")
	aside := staging + ".aside"
	if err := os.Rename(staging, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(staging, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	freed := make(chan struct{})
	stepErrors, ctx := h.e.opts.Metrics.StepErrors, t.Context()
	go func() {
		defer close(freed)
		for metricValue(stepErrors) < n {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		os.Remove(staging)
		os.Rename(aside, staging)
	}()
	return func() { <-freed }
}

// A step that fails while a reconnect's skip window covers several batches
// is retried with the window as it was before the failed step: redelivered
// events are skipped, not applied again (no duplicates, no corrections),
// and the held batches become durable.
func TestFailedStepKeepsTheRedeliveryState(t *testing.T) {
	h := newHarness(t)
	h.opts = Options{RollMaxBytes: 1 << 30, RollMaxAge: time.Hour, Compression: "none", MaxUncommitted: 100}
	h.types = []EventType{testEventType(t, "article", map[string]string{}, []string{"t id v:int"})}
	h.open()
	defer h.close()
	batch := func(stream, p string, first int, committed int, events ...string) *nakadi.Batch {
		b := &nakadi.Batch{StreamID: stream, Cursor: nakadi.Cursor{EventType: "article", Partition: p, Offset: offset(first + len(events) - 1)}}
		if committed >= -1 {
			b.Committed = &nakadi.Cursor{EventType: "article", Partition: p, Offset: offset(committed)}
		}
		for _, ev := range events {
			b.Events = append(b.Events, []byte(ev))
		}
		return b
	}
	ev := func(id string, v, eid int) string {
		return fmt.Sprintf(`{"id":%q,"v":%d,"metadata":{"eid":"e%d"}}`, id, v, eid)
	}
	const none = -2
	// Stream s1 applies nine events in three batches.
	h.step([]*nakadi.Batch{
		batch("s1", "0", 0, -1, ev("a", 1, 0), ev("b", 1, 1), ev("c", 1, 2)),
		batch("s1", "0", 3, none, ev("a", 2, 3), ev("b", 2, 4), ev("c", 2, 5)),
		batch("s1", "0", 6, none, ev("a", 3, 6), ev("b", 3, 7), ev("c", 3, 8)),
	}, nil)
	// Stream s2 resumes after offset 2: six events to skip, in other batches.
	h.step([]*nakadi.Batch{batch("s2", "0", 3, 2, ev("a", 2, 3), ev("b", 2, 4))}, nil)
	// The next step fails (a new staging file for partition 1's rejected
	// event cannot be created) and is retried once the disk is back.
	wait := breakStaging(t, h, 3)
	h.step([]*nakadi.Batch{
		batch("s2", "0", 5, none, ev("c", 2, 5), ev("a", 3, 6), ev("b", 3, 7)),
		batch("s2", "1", 0, -1, `{"id":"x","v":"not a number"}`),
	}, nil)
	wait()
	durable := strings.Join(h.durable, " ")
	h.step([]*nakadi.Batch{batch("s2", "0", 8, none, ev("c", 3, 8), ev("d", 1, 9))}, nil)
	durable += " " + strings.Join(h.durable, " ")
	c := h.e.Status().EventTypes[0].Counters
	if c.Duplicate != 0 || c.Correction != 0 || c.Redelivered != 6 || c.Received != 11 || c.Rejected != 1 || !c.Balanced() {
		t.Fatalf("counters after the retried step: %+v", c)
	}
	for _, off := range []int{4, 7, 9} { // the held batches, released by the batch ending on 9's boundary... and 9 itself
		if !strings.Contains(durable, fmt.Sprintf("article/0@%s", offset(off))) {
			t.Errorf("batch ending at %d never durable: %s", off, durable)
		}
	}
}

// A failure after the state commit (here: reading the earliest timer)
// cannot make the committed step run again: its batches are applied once
// and marked durable once, the step counts as done, and the timers that
// could not be read are scanned by the next step, so no session is lost.
func TestFailureAfterCommitDoesNotReapply(t *testing.T) {
	h := newHarness(t)
	h.opts = Options{RollMaxBytes: 1 << 30, RollMaxAge: time.Hour, Compression: "none", MaxUncommitted: 100}
	h.types = []EventType{testEventType(t, "article", map[string]string{}, []string{"t id v:int"})}
	h.open()
	defer h.close()
	h.e.trace = nil
	batch := func(events ...string) *nakadi.Batch {
		b := &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article", Partition: "0"}}
		for _, ev := range events {
			b.Events = append(b.Events, []byte(ev))
			b.Cursor.Offset = offset(h.offsets["0"])
			h.offsets["0"]++
		}
		return b
	}
	h.step([]*nakadi.Batch{batch(`{"id":"a","v":1}`)}, nil)
	h.clock = h.clock.Add(61 * time.Second) // a's session is due: the next step scans the timers
	h.e.timerFault = func() error { return errors.New("injected: the timer cannot be read") }
	h.step([]*nakadi.Batch{batch(`{"id":"b","v":1}`)}, nil)
	if n := len(h.durable); n != 1 {
		t.Fatalf("the committed batch was marked durable %d times", n)
	}
	c := h.e.Status().EventTypes[0].Counters
	if c.Received != 2 || c.Duplicate != 0 || c.Main != 1 || c.Open != 1 || metricValue(h.e.opts.Metrics.StepErrors) != 0 {
		t.Fatalf("counters %+v, %g step errors", c, metricValue(h.e.opts.Metrics.StepErrors))
	}
	h.e.timerFault = nil
	h.clock = h.clock.Add(61 * time.Second)
	h.step(nil, nil)
	if c := h.e.Status().EventTypes[0].Counters; c.Main != 2 || c.Open != 0 || !c.Balanced() {
		t.Fatalf("b's session did not close after the failed timer read: %+v", c)
	}
}

// A step that keeps failing (not for a full disk) is given up after
// MaxStepFailures attempts: runStep returns ErrGaveUp naming the cause,
// the engine stops (Run returns it), and the heartbeat was not fed while
// the attempts failed, so the watchdog would fire even if they hung.
func TestPersistentFailureGivesUp(t *testing.T) {
	h := newHarness(t)
	h.opts = Options{RollMaxBytes: 1 << 30, RollMaxAge: time.Hour, Compression: "none", MaxUncommitted: 100, MaxStepFailures: 3}
	h.types = []EventType{testEventType(t, "article", map[string]string{}, []string{"t id v:int"})}
	h.open()
	defer h.close()
	h.e.trace = nil
	breakStaging(t, h, math.Inf(1)) // never back
	b := &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article", Partition: "0", Offset: offset(0)},
		Events: [][]byte{[]byte(`{"id":"x","v":"not a number"}`)}}
	var p flatten.Parser
	j := &job{b: b, et: h.e.types["article"], done: make(chan struct{})}
	j.prepare(&p)
	h.e.heartbeat.Store(1) // long ago
	err := h.e.runStep(t.Context(), []*job{j}, nil)
	if !errors.Is(err, ErrGaveUp) || !strings.Contains(err.Error(), "3 attempts in a row failed") || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("runStep: %v", err)
	}
	if h.e.stopped != err {
		t.Fatalf("the engine does not stop: %v", h.e.stopped)
	}
	if f := h.e.Failing(); f == nil || f.DiskFull || f.Attempts != 3 {
		t.Fatalf("Failing: %+v", f)
	}
	if h.e.heartbeat.Load() != 1 {
		t.Fatal("failed attempts fed the heartbeat")
	}
	if metricValue(h.e.opts.Metrics.StepErrors) != 3 {
		t.Fatalf("%g step errors", metricValue(h.e.opts.Metrics.StepErrors))
	}
}

// A full staging disk (a real one: a small tmpfs) is waited for, not given
// up on: the step is retried beyond MaxStepFailures while Failing says the
// disk is full and the heartbeat goes on, and it applies exactly once when
// space returns.
func TestFullDiskIsWaitedFor(t *testing.T) {
	h := newHarness(t)
	staging := filepath.Join(h.dir, "staging")
	disktest.MountTmpfs(t, staging, "256k")
	filler := filepath.Join(staging, "fill", "filler") // in a directory: recovery removes stray files, not directories
	disktest.Fill(t, filler, 0)
	h.opts = Options{RollMaxBytes: 1 << 30, RollMaxAge: time.Hour, Compression: "none", MaxUncommitted: 100, MaxStepFailures: 2}
	h.types = []EventType{testEventType(t, "article", map[string]string{}, []string{"t id v:int s"})}
	h.open()
	defer h.close()
	h.e.trace = nil
	b := &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article", Partition: "0", Offset: offset(0)}}
	for i := range 50 {
		b.Events = append(b.Events, fmt.Appendf(nil, `{"id":"x%d","v":"bad","s":%q}`, i, strings.Repeat("z", 2<<10)))
	}
	var p flatten.Parser
	j := &job{b: b, et: h.e.types["article"], done: make(chan struct{})}
	j.prepare(&p)
	done := make(chan error, 1)
	go func() { done <- h.e.runStep(t.Context(), []*job{j}, nil) }()
	deadline := time.Now().Add(time.Minute)
	for metricValue(h.e.opts.Metrics.StepErrors) < 4 { // twice MaxStepFailures
		if time.Now().After(deadline) {
			t.Fatal("the step did not fail on the full disk")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f := h.e.Failing(); f == nil || !f.DiskFull || !strings.Contains(f.Err, "no space left on device") {
		t.Fatalf("Failing: %+v", f)
	}
	if metricValue(h.e.opts.Metrics.DiskFull) != 1 || time.Since(time.Unix(0, h.e.heartbeat.Load())) > 10*time.Second {
		t.Fatal("disk full: the gauge is not set, or the heartbeat is not fed")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the step did not resume when space returned")
	}
	if c := h.e.Status().EventTypes[0].Counters; c.Rejected != 50 || c.Received != 50 || h.e.Failing() != nil || metricValue(h.e.opts.Metrics.DiskFull) != 0 {
		t.Fatalf("after space returned: %+v, failing %+v", c, h.e.Failing())
	}
	if out := h.files(t); strings.Count(out, `"x`) != 50 {
		t.Fatalf("%d rejected rows, want 50", strings.Count(out, `"x`))
	}
}
