package nakadi

import (
	"context"
	"errors"
	"testing"
	"time"

	"materializer/pipeline/nakadi/emulator"
)

// ResetCursors finds the consumer's subscription (it must not create a
// second one), moves the named partition back and leaves the other; the
// consumer then streams from right after the reset offset.
func TestResetCursors(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	if err := srv.CreateEventType("et", 2, []string{"id"}); err != nil {
		t.Fatal(err)
	}
	publish(t, srv, "et", 0, 40)
	cfg := testConfig(t, srv, "et")
	h := startConsumer(t, cfg)
	seen := 0
	for seen < 40 {
		b := h.next()
		seen += len(b.Events)
		h.c.Durable(b)
	}
	h.stop()
	subs := srv.Subscriptions()
	if len(subs) != 1 {
		t.Fatalf("subscriptions %v", subs)
	}
	before := srv.Committed(subs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	target := emulator.Offset(4)
	id, err := ResetCursors(ctx, cfg, []Cursor{{EventType: "et", Partition: "0", Offset: target, CursorToken: "ignored"}})
	if err != nil {
		t.Fatal(err)
	}
	if id != subs[0] || len(srv.Subscriptions()) != 1 {
		t.Fatalf("reset used subscription %s; have %v", id, srv.Subscriptions())
	}
	after := srv.Committed(id)
	if after[0].Offset != target || after[1] != before[1] {
		t.Fatalf("committed after reset %v (before %v); want p0 at %s, p1 unchanged", after, before, target)
	}
	h2 := startConsumer(t, cfg)
	b := h2.next()
	for b.Cursor.Partition != "0" {
		b = h2.next()
	}
	if b.Committed == nil || b.Committed.Offset != target || firstOffset(b) != 5 {
		t.Fatalf("first batch of p0 after reset: committed %v, first event at offset %d", b.Committed, firstOffset(b))
	}
}

// firstOffset is the partition offset of a batch's first event: the batch's
// cursor offset minus the events after the first.
func firstOffset(b *Batch) int64 {
	n, _ := offsetNumber(b.Cursor.Offset)
	return n - int64(len(b.Events)) + 1
}

func TestPartitionsAndResetErrors(t *testing.T) {
	srv := newEmulator(t, emulator.Options{RetainEvents: 5})
	if err := srv.CreateEventType("et", 1, []string{"id"}); err != nil {
		t.Fatal(err)
	}
	publish(t, srv, "et", 0, 12)
	cfg := testConfig(t, srv, "et")
	ctx := context.Background()
	ps, err := Partitions(ctx, cfg, "et")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Partition != "0" || ps[0].Oldest != emulator.Offset(7) || ps[0].Newest != emulator.Offset(11) {
		t.Fatalf("partitions %+v", ps)
	}
	if _, err := Partitions(ctx, cfg, "nope"); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("partitions of a missing event type: %v", err)
	}
	// An offset that expired is refused (422), naming the operation.
	_, err = ResetCursors(ctx, cfg, []Cursor{{EventType: "et", Partition: "0", Offset: emulator.Offset(2)}})
	var pe *ProblemError
	if !errors.As(err, &pe) || pe.Status != 422 || pe.Op != opReset {
		t.Fatalf("reset to an expired offset: %v", err)
	}
}
