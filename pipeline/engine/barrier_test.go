package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
	"materializer/state"
)

// TestBarrierAppliesEverythingQueued: batches sent to a running engine are
// all applied and durable once Barrier returns, however many were still
// queued when it was called; a flush after it leaves no session open.
func TestBarrierAppliesEverythingQueued(t *testing.T) {
	dir := t.TempDir()
	db, err := state.Open(filepath.Join(dir, "state"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	et := testEventType(t, "article", map[string]string{"gap": "1h", "max": "2h"}, []string{"t id:int v:int"})
	var durable atomic.Int64
	et.Durable = func(*nakadi.Batch) { durable.Add(1) }
	e, err := New(Options{DB: db, StagingDir: filepath.Join(dir, "staging"), RollMaxBytes: 1 << 30, RollMaxAge: time.Hour,
		CSV: flatten.CSV{Delimiter: ',', Header: true}, StepEvents: 16, Logger: zerolog.Nop()}, []EventType{et})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan *nakadi.Batch, 64)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, in) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for !e.Recovered() {
		time.Sleep(time.Millisecond)
	}
	const batches, per = 300, 10
	for i := range batches {
		b := &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article", Partition: "0", Offset: offset(i + 1)}}
		for k := range per {
			b.Events = append(b.Events, fmt.Appendf(nil, `{"id":%d,"v":1}`, i*per+k))
		}
		in <- b
	}
	if err := e.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	c := e.Status().EventTypes[0].Counters
	if c.Received != batches*per || c.Open != batches*per || durable.Load() != batches {
		t.Fatalf("after the barrier: counters %+v, %d batches durable; want every one of %d", c, durable.Load(), batches)
	}
	if _, err := e.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if c := e.Status().EventTypes[0].Counters; c.Open != 0 || c.Main != batches*per {
		t.Fatalf("after the flush: %+v", c)
	}
}
