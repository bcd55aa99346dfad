package nakadi

import (
	"context"
	"errors"
	"fmt"
	"materializer/pipeline/nakadi/emulator"
	"strings"
	"testing"
	"time"
)

// batchLine is a stream line of n events of about size bytes each.
func batchLine(offset, n, size int) string {
	pad := strings.Repeat("x", size)
	evs := make([]string, n)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"id":%d,"pad":%q}`, i, pad)
	}
	return fmt.Sprintf(`{"cursor":{"partition":"0","offset":"%018d","event_type":"et","cursor_token":"t"},"events":[%s]}`+"\n",
		offset, strings.Join(evs, ","))
}

// TestBuffersBoundWhatReadersHold: a reader holds its batch's memory until
// the batch leaves; while the budget is spent the next read waits (and ends
// with its context), and once the batch gives its memory back it goes on. A
// keep-alive holds nothing.
func TestBuffersBoundWhatReadersHold(t *testing.T) {
	line := batchLine(1, 100, 1000) // ~100 KB: longer than the read buffer
	keepAlive := `{"cursor":{"partition":"0","offset":"000000000000000001","event_type":"et","cursor_token":"t"}}` + "\n"
	mem := NewBuffers(150 << 10)
	r := newStreamReader(strings.NewReader(keepAlive+line+line), 4<<10, 0, mem)
	ctx := context.Background()

	ka, err := r.next(ctx)
	if err != nil || !ka.keepAlive() || ka.held != 0 || mem.InUse() != 0 {
		t.Fatalf("keep-alive: %v, held %d, in use %d; want nothing held", err, ka.held, mem.InUse())
	}
	first, err := r.next(ctx)
	if err != nil || len(first.Events) != 100 {
		t.Fatalf("first batch: %v", err)
	}
	if first.held < int64(len(line)-1) || mem.InUse() != first.held {
		t.Fatalf("first batch holds %d, in use %d; want at least its line (%d) and all of it in use", first.held, mem.InUse(), len(line)-1)
	}
	wait, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := r.next(wait); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second batch with the budget spent: %v; want to wait until the context ends", err)
	}
	if mem.InUse() != first.held || mem.Waited() <= 0 {
		t.Fatalf("after the wait: in use %d (want %d), waited %s", mem.InUse(), first.held, mem.Waited())
	}
	mem.release(first.held)
	second, err := r.next(ctx)
	if err != nil || len(second.Events) != 100 || mem.InUse() != second.held {
		t.Fatalf("second batch once the first left: %v, in use %d, held %d", err, mem.InUse(), second.held)
	}
}

// TestBuffersLineLargerThanBudget: a line larger than the whole budget is
// read (holding all of it), not refused or waited on forever.
func TestBuffersLineLargerThanBudget(t *testing.T) {
	line := batchLine(1, 100, 1000)
	mem := NewBuffers(32 << 10)
	b, err := newStreamReader(strings.NewReader(line), 4<<10, 0, mem).next(context.Background())
	if err != nil || len(b.Events) != 100 || b.held != 32<<10 || mem.InUse() != 32<<10 {
		t.Fatalf("%v; held %d, in use %d; want the whole budget held", err, b.held, mem.InUse())
	}
}

// TestBuffersFreedByTheConsumer: every batch a consumer reads gives its
// memory back once handed out (or dropped), so a small budget shared by
// two event types' consumers never stops them, and nothing stays held.
func TestBuffersFreedByTheConsumer(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	mem := NewBuffers(8 << 10)
	var sinks []*sink
	var hs []*harness
	for _, et := range []string{"a.updated", "b.updated"} {
		if err := srv.CreateEventType(et, 2, []string{"id"}); err != nil {
			t.Fatal(err)
		}
		publish(t, srv, et, 0, 500)
		cfg := testConfig(t, srv, et)
		cfg.Buffers = mem
		h := startConsumer(t, cfg)
		hs = append(hs, h)
		sinks = append(sinks, h.sink())
	}
	for i, s := range sinks {
		waitFor(t, fmt.Sprintf("every event of consumer %d", i), func() bool { return s.count(0, 500) == 500 })
	}
	for _, h := range hs {
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	}
	if n := mem.InUse(); n != 0 {
		t.Fatalf("%d bytes still held after every batch was handed out and the consumers stopped", n)
	}
}
