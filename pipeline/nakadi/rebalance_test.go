package nakadi

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

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

// TestPartitionMovesNoticedPromptly: with /stats polled only once an hour
// in the normal course, a consumer still notices within seconds that its
// partitions went to another stream — when a new member joins (the
// partitions fall silent, /stats is then polled fast until the move is
// done) and when its own stream is lost and re-opened (the new stream
// comes without them) — and the "partition lost" log names the new owner.
func TestPartitionMovesNoticedPromptly(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 4, []string{"id"})
	publish(t, srv, "et", 0, 100)
	cfg := func(logs *lineLog) Config {
		c := testConfig(t, srv, "et")
		c.StatsInterval, c.StatsFastInterval = time.Hour, 100*time.Millisecond
		if logs != nil {
			c.Logger = zerolog.New(logs)
		}
		return c
	}
	logsA := &lineLog{}
	a := startConsumer(t, cfg(logsA))
	sa := a.sink()
	sub := func() string { return a.c.SubscriptionID() }
	waitFor(t, "A committed all", func() bool { return sa.count(0, 100) == 100 && committedAll(srv, sub(), "et", 4) })
	waitFor(t, "A's stats polling slowed down", func() bool { return !a.c.Status().Rebalancing })
	streamA := a.c.Status().StreamID

	b := startConsumer(t, cfg(nil))
	sb := b.sink()
	waitFor(t, "B streaming", b.c.Streaming)
	streamB := b.c.Status().StreamID
	waitFor(t, "2 + 2 split", func() bool { return countValue(srv.Assignment(sub()), streamB) == 2 })
	moved := partitionsOf(srv.Assignment(sub()), streamB)
	within(t, 5*time.Second, "A's lost notices for the partitions B took", func() bool { return len(sa.lostNotices()) == 2 })
	checkLost(t, sa.lostNotices(), logsA, streamA, streamB, moved)

	// A's stream is gone (a Nakadi node restarts): B owns everything; A
	// reconnects and gets two partitions back, not the ones it had.
	kept := partitionsOf(srv.Assignment(sub()), streamA)
	waitFor(t, "A's stats polling slowed down again", func() bool { return !a.c.Status().Rebalancing })
	if err := srv.CloseStream(streamA, false); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "A's lost notices for the partitions it had", func() bool { return len(sa.lostNotices()) == 4 })
	checkLost(t, sa.lostNotices()[2:], logsA, streamA, streamB, kept)
	publish(t, srv, "et", 100, 200)
	waitFor(t, "100..200 consumed", func() bool { return union(sa, sb, 100, 200) == 100 })
}

// within polls cond for at most d: a deadline that only a prompt reaction
// meets.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkLost: the notices name stream from and the partitions want; the
// "partition lost" log lines name the new owner.
func checkLost(t *testing.T, notices []*Batch, logs *lineLog, from, owner string, want []string) {
	t.Helper()
	var got []string
	for _, l := range notices {
		if l.StreamID != from {
			t.Errorf("lost notice of stream %s, want %s", l.StreamID, from)
		}
		got = append(got, l.Cursor.Partition)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("lost %v, want %v", got, want)
	}
	for _, p := range want {
		line := logs.find(func(m map[string]any) bool { return m["message"] == "partition lost" && m["partition"] == p })
		if line == nil || line["new_owner_stream_id"] != owner || line["stream_id"] != from {
			t.Errorf("partition %s: log %v, want stream_id %s and new_owner_stream_id %s", p, line, from, owner)
		}
	}
}

// lineLog collects JSON log lines.
type lineLog struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *lineLog) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.lines = append(l.lines, m)
	l.mu.Unlock()
	return len(p), nil
}

// find returns the last line that matches.
func (l *lineLog) find(match func(map[string]any) bool) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.lines) - 1; i >= 0; i-- {
		if match(l.lines[i]) {
			return l.lines[i]
		}
	}
	return nil
}
