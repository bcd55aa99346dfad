package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

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

	staging := filepath.Join(h.dir, "staging")
	aside := staging + ".aside"
	if err := os.Rename(staging, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(staging, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	stepErrors := h.e.opts.Metrics.StepErrors
	freed := make(chan struct{})
	go func() { // the operator frees the disk after a few failed attempts
		defer close(freed)
		for counterValue(stepErrors) < 3 {
			time.Sleep(10 * time.Millisecond)
		}
		os.Remove(staging)
		os.Rename(aside, staging)
	}()
	defer func() { <-freed }()
	b := reject("1") // opens a new staging file: fails while the directory is gone
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

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}
