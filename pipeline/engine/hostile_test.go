package engine

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
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
