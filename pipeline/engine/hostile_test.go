package engine

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
	"materializer/pipeline/nakadi/emulator"
	"materializer/state"
)

// One huge event grows the row buffers, the rejected-row buffer and the
// parser; the small events after it leave them small again (the memory
// budget holds over time, not only at the peak).
func TestBuffersShrinkAfterAHugeEvent(t *testing.T) {
	h := newHarness(t)
	h.opts = Options{RollMaxBytes: 1 << 30, RollMaxAge: time.Hour, Compression: "gzip", CompressionLevel: 1, MaxUncommitted: 100,
		Limits: flatten.Limits{EventBytes: 8 << 20, Rows: 10000, OutputBytes: 16 << 20, FieldBytes: 1 << 20}, MaxRejectedRaw: 8 << 20}
	h.types = []EventType{testEventType(t, "article", map[string]string{}, []string{"t id:int v:int s:string:s q:int:a[*]"})}
	h.open()
	defer h.close()
	h.e.trace = nil
	batch := func(events ...string) *nakadi.Batch {
		h.offsets["0"] += len(events)
		b := &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article", Partition: "0", Offset: offset(h.offsets["0"])}}
		for _, e := range events {
			b.Events = append(b.Events, []byte(e))
		}
		return b
	}
	big := strings.Repeat("x", 900<<10)
	h.step([]*nakadi.Batch{batch(
		fmt.Sprintf(`{"id":1,"v":1,"s":%q,"a":[1,2,3,4,5,6,7,8,9,10]}`, big), // 9 MB of rows at the session's close
		fmt.Sprintf(`{"id":2,"v":"x","s":%q}`, big+big),                      // a 1.8 MB rejected row
	)}, nil)
	if _, err := h.e.flush(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		h.step([]*nakadi.Batch{batch(fmt.Sprintf(`{"id":%d,"v":1,"s":"small","a":[1]}`, 10+i), `{"id":2,"v":"y"}`)}, nil)
		if _, err := h.e.flush(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range h.e.rows {
		if cap(r.b) > keepRowBytes {
			t.Errorf("row buffer %d keeps %d bytes", i, cap(r.b))
		}
	}
	if cap(h.e.rejBuf) > keepRowBytes {
		t.Errorf("the rejected-row buffer keeps %d bytes", cap(h.e.rejBuf))
	}
	c := h.e.Status().EventTypes[0].Counters
	if c.Main != 4 || c.Rejected != 4 || !c.Balanced() {
		t.Fatalf("counters %+v", c)
	}
}

// An occurred_at outside what int64 nanoseconds hold (1677-2262) counts as
// unknown: it no longer wraps around into a garbage min/max_occurred_at of
// the file (and of its notice).
func TestOccurredAtOutsideInt64NanosecondsIsUnknown(t *testing.T) {
	for text, want := range map[string]int64{
		"2026-11-21T12:00:00Z":           time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC).UnixNano(),
		"1677-09-21T00:12:43.145224192Z": math.MinInt64,
		"1677-09-21T00:12:43.145224191Z": 0,
		"2262-04-11T23:47:16.854775807Z": math.MaxInt64,
		"2262-04-11T23:47:16.854775808Z": 0,
		"9999-12-31T23:59:59Z":           0,
		"0001-01-01T00:00:00Z":           0,
		"not a time":                     0,
	} {
		if got := parseOccurred([]byte(text)); got != want {
			t.Errorf("parseOccurred(%s) = %d, want %d", text, got, want)
		}
	}
	h := newHarness(t)
	h.opts = Options{RollMaxBytes: 1 << 30, RollMaxAge: time.Hour, Compression: "none", MaxUncommitted: 100}
	h.types = []EventType{testEventType(t, "article", map[string]string{}, []string{"t id:int v:int"})}
	h.open()
	defer h.close()
	h.e.trace = nil
	b := &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article", Partition: "0", Offset: offset(3)}}
	for i, at := range []string{"9999-12-31T23:59:59Z", "2026-11-21T12:00:00Z", "0001-01-01T00:00:00Z"} {
		b.Events = append(b.Events, fmt.Appendf(nil, `{"id":%d,"v":1,"metadata":{"occurred_at":%q}}`, i, at))
	}
	h.step([]*nakadi.Batch{b}, nil)
	if _, err := h.e.flush(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	ob, err := h.db.Outbox()
	if err != nil || len(ob) != 1 {
		t.Fatalf("outbox %v, %v", ob, err)
	}
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC).UnixNano()
	if f := ob[0].File; f.MinOccurred != at || f.MaxOccurred != at || f.Rows != 3 {
		t.Fatalf("file of 3 rows: min %s, max %s", time.Unix(0, f.MinOccurred).UTC(), time.Unix(0, f.MaxOccurred).UTC())
	}
}

// Batches of an event type that is not configured (Nakadi's dead-letter
// redrive event type can appear in any subscription) are committed without
// processing: by the consumer that handed them out, over real HTTP to the
// Nakadi emulator. Before, they were never marked durable and their
// partition stalled until the commit timeout, again and again.
func TestUnconfiguredEventTypeIsCommitted(t *testing.T) {
	nk := emulator.NewServer(emulator.Options{})
	t.Cleanup(nk.Close)
	for _, name := range []string{"article", "nakadi.dead.letter"} {
		if err := nk.CreateEventType(name, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	c, err := nakadi.New(nakadi.Config{URL: nk.URL(), OwningApplication: "materializer-test", EventTypes: []string{"article", "nakadi.dead.letter"},
		ReadFrom: "begin", BatchFlushTimeout: 20 * time.Millisecond, CommitTimeout: 5 * time.Second, FractionalSeconds: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(filepath.Join(t.TempDir(), "state"), state.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	et := testEventType(t, "article", map[string]string{}, []string{"t id v:int"})
	et.Durable = c.Durable
	e, err := New(Options{DB: db, StagingDir: filepath.Join(t.TempDir(), "staging"), Compression: "none", RollMaxBytes: 1 << 30,
		RollMaxAge: time.Hour, CSV: flatten.CSV{Delimiter: ',', Header: true}, Tick: 20 * time.Millisecond, Logger: zerolog.Nop()}, []EventType{et})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	in := make(chan *nakadi.Batch, 8)
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(ctx, in) })
	wg.Go(func() { _ = e.Run(ctx, in) })
	defer wg.Wait()
	defer cancel()
	meta := func(i int) string {
		return fmt.Sprintf(`"metadata":{"eid":"00000000-0000-4000-8000-%012d","occurred_at":"2026-11-21T12:00:00Z"}`, i)
	}
	for i := range 5 {
		if err := nk.Publish("nakadi.dead.letter", fmt.Appendf(nil, `{%s,"x":%d}`, meta(i), i)); err != nil {
			t.Fatal(err)
		}
		if err := nk.Publish("article", fmt.Appendf(nil, `{%s,"id":"a","v":%d}`, meta(100+i), i)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"article": nk.NewestOffset("article", 0), "nakadi.dead.letter": nk.NewestOffset("nakadi.dead.letter", 0)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]string{}
		for _, sub := range nk.Subscriptions() {
			for _, cur := range nk.Committed(sub) {
				got[cur.EventType] = cur.Offset
			}
		}
		if got["article"] == want["article"] && got["nakadi.dead.letter"] == want["nakadi.dead.letter"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := e.Status().EventTypes[0].Counters; c.Received != 5 || len(e.Status().EventTypes) != 1 {
		t.Fatalf("status %+v", e.Status())
	}
}
