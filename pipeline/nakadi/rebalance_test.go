package nakadi

import (
	"slices"
	"testing"

	"materializer/pipeline/nakadi/emulator"
)

// TestConcurrentConsumersSplitAndRebalance: two consumers of one
// subscription split its partitions; a partition moves only after the old
// owner committed it (so the new owner starts exactly there); the old owner
// gets a Lost notice; when one consumer leaves, the other gets its
// partitions back, with the committed cursor on the first batch again.
func TestConcurrentConsumersSplitAndRebalance(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 4, []string{"id"})
	publish(t, srv, "et", 0, 100)
	a := startConsumer(t, testConfig(t, srv, "et"))
	sa := a.sink()
	waitFor(t, "A consumed all", func() bool { return sa.count(0, 100) == 100 })
	sub := a.c.SubscriptionID()
	waitFor(t, "A committed all", func() bool { return committedAll(srv, sub, "et", 4) })
	streamA := a.c.Status().StreamID

	// A holds new batches: B joins, but partitions move only once A commits.
	sa.setHold(true)
	publish(t, srv, "et", 100, 140)
	waitFor(t, "A received the held events", func() bool { return sa.count(100, 140) == 40 })
	b := startConsumer(t, testConfig(t, srv, "et"))
	sb := b.sink()
	waitFor(t, "B streaming", b.c.Streaming)
	// B's stream opened after the emulator decided the split: two
	// partitions wait for A's commit to move, and A cannot commit what it
	// holds.
	if got, moving := srv.Assignment(sub), srv.Reassigning(sub); len(got) != 4 || countValue(got, streamA) != 4 ||
		countValue(moving, b.c.Status().StreamID) != 2 {
		t.Fatalf("handed over before A committed: owners %v, moving %v", got, moving)
	}
	sa.release(a.c)
	waitFor(t, "2 + 2 split", func() bool {
		got := srv.Assignment(sub)
		return countValue(got, streamA) == 2 && len(got) == 4
	})
	moved := partitionsOf(srv.Assignment(sub), b.c.Status().StreamID)
	publish(t, srv, "et", 140, 240)
	waitFor(t, "140..240 consumed by A and B", func() bool { return union(sa, sb, 140, 240) == 100 })
	if sb.count(0, 140) != 0 {
		t.Fatal("B received events A had committed before the handover")
	}
	for _, bt := range sb.allBatches()[:1] {
		if bt.Committed == nil {
			t.Fatalf("B's first batch without Committed: %+v", bt.Cursor)
		}
	}
	waitFor(t, "A's lost notices", func() bool { return len(sa.lostNotices()) == 2 })
	var lost []string
	for _, l := range sa.lostNotices() {
		if l.StreamID != streamA {
			t.Fatalf("lost notice of stream %s", l.StreamID)
		}
		lost = append(lost, l.Cursor.Partition)
	}
	slices.Sort(lost)
	if !slices.Equal(lost, moved) {
		t.Fatalf("lost %v, moved %v", lost, moved)
	}

	// B leaves: A gets every partition back on the same stream.
	before := len(sa.allBatches())
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A owns all again", func() bool { return countValue(srv.Assignment(sub), streamA) == 4 })
	publish(t, srv, "et", 240, 300)
	waitFor(t, "A consumed the rest", func() bool { return sa.count(240, 300) == 60 })
	waitFor(t, "all committed", func() bool { return committedAll(srv, sub, "et", 4) })
	back := map[string]bool{}
	for _, bt := range sa.allBatches()[before:] {
		if slices.Contains(moved, bt.Cursor.Partition) && !back[bt.Cursor.Partition] {
			back[bt.Cursor.Partition] = true
			if bt.Committed == nil || bt.StreamID != streamA {
				t.Fatalf("first batch of a returned partition: %+v committed=%v", bt.Cursor, bt.Committed)
			}
		}
	}
	if len(back) != 2 {
		t.Fatalf("returned partitions seen: %v", back)
	}
	if union(sa, sb, 0, 300) != 300 {
		t.Fatal("events lost")
	}
}

func countValue(m map[string]string, v string) int {
	n := 0
	for _, x := range m {
		if x == v {
			n++
		}
	}
	return n
}

// partitionsOf lists the partitions (of "et") a stream owns, sorted.
func partitionsOf(m map[string]string, stream string) []string {
	var out []string
	for k, v := range m {
		if v == stream {
			out = append(out, k[len("et/"):])
		}
	}
	slices.Sort(out)
	return out
}

// union counts ids in [from, to) seen by either sink.
func union(a, b *sink, from, to int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for i := from; i < to; i++ {
		if a.seen[i] > 0 || b.seen[i] > 0 {
			n++
		}
	}
	return n
}
