package nakadi

import (
	"errors"
	"strings"
	"testing"

	"materializer/pipeline/nakadi/emulator"
)

func TestNames(t *testing.T) {
	for _, p := range []string{"0", "17", "p-1", "a_b"} {
		if !ValidPartition(p) {
			t.Errorf("partition %q refused", p)
		}
	}
	for _, p := range []string{"", ".", "..", "../../../tmp/x", "a/b", "a\x00b", "a.b", " 1", strings.Repeat("1", 65), "é"} {
		if ValidPartition(p) {
			t.Errorf("partition %q accepted", p)
		}
	}
	for _, et := range []string{"article.updated", "nakadi.dead.letter", "a-b_c.d1"} {
		if !ValidEventType(et) {
			t.Errorf("event type %q refused", et)
		}
	}
	for _, et := range []string{"", "../x", ".a", "a..b", "a/b", "1a", strings.Repeat("a", 256), "a b"} {
		if ValidEventType(et) {
			t.Errorf("event type %q accepted", et)
		}
	}
	err := checkNames(Cursor{EventType: "et", Partition: strings.Repeat("\x00", 200)})
	if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), `"\x00\x00`) || !strings.Contains(err.Error(), "(200 bytes)") {
		t.Fatalf("checkNames: %v", err)
	}
}

// A partition id that would become a path outside the staging directory
// (served over real HTTP by the emulator, as a broken or hostile Nakadi
// would) is a loud, counted error of its stream: no batch of it is handed
// out or committed, while the stream's other partition and another event
// type's consumer deliver and commit everything.
func TestInvalidPartitionIsALoudErrorOfItsStream(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	for _, et := range []string{"bad.et", "good.et"} {
		if err := srv.CreateEventType(et, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv.ServePartitionAs("bad.et", 1, "../../../tmp/x")
	publish(t, srv, "bad.et", 0, 20) // round robin: even ids to partition 0, odd ones to 1
	publish(t, srv, "good.et", 100, 120)
	bad, good := startConsumer(t, testConfig(t, srv, "bad.et")), startConsumer(t, testConfig(t, srv, "good.et"))
	badSink, goodSink := bad.sink(), good.sink()
	invalid := bad.c.m.errors.WithLabelValues("bad.et", "invalid_name")
	waitFor(t, "the other event type delivered and committed", func() bool {
		return goodSink.count(100, 120) == 20 && committedAll(srv, good.c.SubscriptionID(), "good.et", 2)
	})
	waitFor(t, "the invalid partition refused on several streams, the valid one delivered", func() bool {
		return metricValue(invalid) >= 2 && badSink.count(0, 20) == 10
	})
	for _, b := range badSink.allBatches() {
		if b.Cursor.Partition != "0" {
			t.Fatalf("a batch of partition %q was handed out", b.Cursor.Partition)
		}
	}
	if st := bad.c.Status(); !strings.Contains(st.LastError, "invalid name") || !strings.Contains(st.LastError, `"../../../tmp/x"`) {
		t.Fatalf("last error %q", st.LastError)
	}
	waitFor(t, "partition 0 committed", func() bool {
		cs := srv.Committed(bad.c.SubscriptionID())
		return len(cs) == 2 && cs[0].Offset == srv.NewestOffset("bad.et", 0) && cs[1].Offset == emulator.Offset(-1)
	})
	for _, p := range bad.c.Status().Partitions {
		if !ValidPartition(p.Partition) {
			t.Fatalf("status lists partition %q", p.Partition)
		}
	}
}
