package nakadi

import (
	"fmt"
	"testing"
	"time"
)

func trackedBatch(t *tracker, stream, part string, off, events int) *Batch {
	b := &Batch{StreamID: stream, Cursor: Cursor{EventType: "e", Partition: part,
		Offset: fmt.Sprintf("001-0001-%018d", off), CursorToken: "t"}, Events: make([][]byte, events)}
	b.entry = t.add(b, time.Time{})
	return b
}

func readyOffsets(t *tracker) map[string]string {
	got := map[string]string{}
	for stream, items := range t.take() {
		for _, it := range items {
			got[stream+"/"+it.sp.key.Partition] = it.entry.cursor.Offset[9:]
			t.committed(it)
		}
	}
	return got
}

func TestTrackerCommitsOnlyContiguousDurable(t *testing.T) {
	tr := newTracker()
	a1 := trackedBatch(tr, "s1", "0", 1, 2)
	a2 := trackedBatch(tr, "s1", "0", 3, 2)
	a3 := trackedBatch(tr, "s1", "0", 5, 2)
	b1 := trackedBatch(tr, "s1", "1", 7, 1)
	if tr.uncommittedEvents() != 7 {
		t.Fatalf("uncommitted = %d", tr.uncommittedEvents())
	}
	tr.durable(a2.entry) // out of order: a1 not yet durable
	tr.durable(b1.entry) // other partition
	if got := readyOffsets(tr); len(got) != 1 || got["s1/1"] != "000000000000000007" {
		t.Fatalf("ready = %v, want only partition 1", got)
	}
	tr.durable(a1.entry)
	if got := readyOffsets(tr); got["s1/0"] != "000000000000000003" {
		t.Fatalf("ready = %v, want a2's cursor", got)
	}
	if tr.uncommittedEvents() != 2 || !tr.pending() {
		t.Fatalf("uncommitted = %d pending = %v", tr.uncommittedEvents(), tr.pending())
	}
	tr.durable(a3.entry)
	tr.durable(a3.entry) // twice is harmless
	if got := readyOffsets(tr); got["s1/0"] != "000000000000000005" {
		t.Fatalf("ready = %v", got)
	}
	if tr.pending() || tr.uncommittedEvents() != 0 {
		t.Fatalf("pending after everything committed: %d", tr.uncommittedEvents())
	}
}

func TestTrackerRetryDropAbandon(t *testing.T) {
	tr := newTracker()
	a1 := trackedBatch(tr, "s1", "0", 1, 1)
	tr.durable(a1.entry)
	items := tr.take()["s1"]
	a2 := trackedBatch(tr, "s1", "0", 2, 1)
	tr.durable(a2.entry) // newer ready while a1 is in flight
	tr.retry(items[0])
	if got := readyOffsets(tr); got["s1/0"] != "000000000000000002" {
		t.Fatalf("after retry ready = %v, want the newer cursor", got)
	}
	if tr.uncommittedEvents() != 0 {
		t.Fatalf("uncommitted = %d", tr.uncommittedEvents())
	}
	b1 := trackedBatch(tr, "s2", "0", 3, 4)
	b2 := trackedBatch(tr, "s2", "0", 4, 4)
	tr.abandon(b1.entry) // not the newest: ignored
	tr.abandon(b2.entry)
	if tr.uncommittedEvents() != 4 {
		t.Fatalf("uncommitted after abandon = %d", tr.uncommittedEvents())
	}
	if !tr.drop(streamPart{"s2", PartitionKey{"e", "0"}}) || tr.pending() || tr.uncommittedEvents() != 0 {
		t.Fatalf("drop left state: %d", tr.uncommittedEvents())
	}
	if tr.durable(b1.entry) {
		t.Fatal("durable after drop made a cursor ready")
	}
}
