package nakadi

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"materializer/pipeline/nakadi/emulator"
)

// TestResumeFromCommittedCursorAfterReconnect: batches carry cursor and
// stream id, the first batch of each partition carries the committed cursor
// read after it arrived, and after a cut stream consumption resumes after
// the committed cursor.
func TestResumeFromCommittedCursorAfterReconnect(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 2, []string{"id"})
	publish(t, srv, "et", 0, 40)
	h := startConsumer(t, testConfig(t, srv, "et"))
	firsts := map[string]*Batch{}
	got := 0
	for got < 40 {
		b := h.next()
		if b.StreamID == "" || b.Cursor.EventType != "et" || b.Cursor.CursorToken == "" || len(b.Events) == 0 {
			t.Fatalf("batch: %+v", b)
		}
		if _, ok := firsts[b.Cursor.Partition]; !ok {
			firsts[b.Cursor.Partition] = b
			if b.Committed == nil || b.Committed.Offset != "001-0001--1" {
				t.Fatalf("first batch committed = %+v, want 001-0001--1", b.Committed)
			}
		} else if b.Committed != nil {
			t.Fatalf("Committed on a later batch: %+v", b)
		}
		got += len(b.Events)
		h.c.Durable(b)
	}
	sub := h.c.SubscriptionID()
	waitFor(t, "all committed", func() bool { return committedAll(srv, sub, "et", 2) })
	if srv.Requests(emulator.RouteCommit, 0) == 0 {
		t.Fatal("no commit requests")
	}
	first := firsts["0"].StreamID
	if err := srv.CutStream(first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new stream", func() bool { s := h.c.Status(); return s.Streaming && s.StreamID != first })
	publish(t, srv, "et", 40, 60)
	seen := map[string]bool{}
	for got < 60 {
		b := h.next()
		if b.StreamID == first {
			t.Fatalf("batch of the old stream after reconnect: %+v", b.Cursor)
		}
		for _, e := range b.Events {
			if id := eventID(t, e); id < 40 {
				t.Fatalf("committed event %d re-sent", id)
			}
		}
		if !seen[b.Cursor.Partition] {
			seen[b.Cursor.Partition] = true
			want := srv.Committed(sub)
			if b.Committed == nil || b.Committed.Offset == "001-0001--1" {
				t.Fatalf("first batch after reconnect: Committed = %+v (emulator %+v)", b.Committed, want)
			}
		}
		got += len(b.Events)
		h.c.Durable(b)
	}
	st := h.c.Status()
	if st.Reconnects < 1 || len(st.Partitions) != 2 || st.Partitions[0].EventsReceived == 0 || st.Partitions[0].CommittedOffset == "" {
		t.Fatalf("status: %+v", st)
	}
	if n := metricValue(h.c.m.reconnects.WithLabelValues("et")); n < 1 {
		t.Fatalf("reconnects metric = %v", n)
	}
}

// TestKeepAlivesAreNeverCommitted: a stream of keep-alives commits nothing.
func TestKeepAlivesAreNeverCommitted(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 2, nil)
	h := startConsumer(t, testConfig(t, srv, "et"))
	s := h.sink()
	waitFor(t, "keep-alives", func() bool {
		st := h.c.Status()
		return len(st.Partitions) == 2 && st.Partitions[0].KeepAlives >= 5 && st.Partitions[1].KeepAlives >= 5
	})
	time.Sleep(3 * testConfig(t, srv).CommitInterval) // let a commit round pass
	if n := srv.Requests(emulator.RouteCommit, 0); n != 0 {
		t.Fatalf("%d commit requests for keep-alives", n)
	}
	if len(s.allBatches()) != 0 {
		t.Fatal("keep-alives were handed downstream")
	}
	publish(t, srv, "et", 0, 3)
	sub := h.c.SubscriptionID()
	waitFor(t, "events committed", func() bool { return committedAll(srv, sub, "et", 2) })
}

// Test409RetriedUntilSlotFrees: with the only slot taken, the consumer
// retries 409 with backoff and streams once the slot frees.
func Test409RetriedUntilSlotFrees(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 1, nil)
	holder := startConsumer(t, testConfig(t, srv, "et"))
	holder.sink()
	waitFor(t, "holder streaming", holder.c.Streaming)
	h := startConsumer(t, testConfig(t, srv, "et"))
	h.sink()
	waitFor(t, "409s", func() bool { return srv.Requests(emulator.RouteStream, http.StatusConflict) >= 3 })
	if h.c.Streaming() || h.c.Ready() {
		t.Fatal("streaming without a slot")
	}
	if st := h.c.Status(); !strings.Contains(st.LastError, "409") {
		t.Fatalf("last error %q", st.LastError)
	}
	_ = holder.stop()
	waitFor(t, "second consumer streaming", h.c.Ready)
}

// TestCommitTimeoutRedeliversWithoutLoss: a pipeline slower than the commit
// timeout gets the stream closed; the events come again and none is lost.
func TestCommitTimeoutRedeliversWithoutLoss(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 2, []string{"id"})
	publish(t, srv, "et", 0, 30)
	cfg := testConfig(t, srv, "et")
	cfg.CommitTimeout = time.Second
	cfg.CommitInterval = 100 * time.Millisecond
	h := startConsumer(t, cfg)
	s := h.sink()
	s.setHold(true)
	waitFor(t, "all received once", func() bool { return s.count(0, 30) == 30 })
	first := h.c.Status().StreamID
	waitFor(t, "commit timeout and a new stream", func() bool { st := h.c.Status(); return st.Streaming && st.StreamID != first })
	s.release(h.c) // too late for the first stream: its commits get 422
	waitFor(t, "re-delivered", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := range 30 {
			if s.seen[i] < 2 {
				return false
			}
		}
		return true
	})
	waitFor(t, "all committed", func() bool { return committedAll(srv, h.c.SubscriptionID(), "et", 2) })
	for _, l := range s.lostNotices() {
		if l.StreamID != first || len(l.Events) != 0 {
			t.Fatalf("lost notice %+v", l)
		}
	}
}

// TestUnprocessableCommitReportsLostPartition: a 422 on commit drops the
// partition's cursors and sends a Lost notice; Nakadi re-sends the events.
func TestUnprocessableCommitReportsLostPartition(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 1, nil)
	publish(t, srv, "et", 0, 5)
	h := startConsumer(t, testConfig(t, srv, "et"))
	b := h.next()
	srv.DelayNext(emulator.RouteStream, 1, 2*time.Second)      // the 422 comes before the next stream
	if err := srv.CloseStream(b.StreamID, false); err != nil { // node shutdown: the session is gone
		t.Fatal(err)
	}
	h.c.Durable(b)
	var lost *Batch
	for lost == nil {
		if n := h.next(); n.Lost {
			lost = n
		} else {
			h.c.Durable(n)
		}
	}
	if lost.StreamID != b.StreamID || lost.Cursor.Partition != "0" || lost.Cursor.EventType != "et" {
		t.Fatalf("lost notice: %+v", lost)
	}
	if srv.Requests(emulator.RouteCommit, http.StatusUnprocessableEntity) == 0 {
		t.Fatal("no 422 seen")
	}
	// The events come again on the next stream, with the committed cursor.
	again := h.next()
	if again.StreamID == b.StreamID || again.Committed == nil || eventID(t, again.Events[0]) != 0 {
		t.Fatalf("re-sent batch: %+v", again)
	}
	h.c.Durable(again)
	if n := metricValue(h.c.m.lost.WithLabelValues("et", "0")); n != 1 {
		t.Fatalf("lost metric = %v", n)
	}
}

// TestTokenRefresh: the token file is re-read when it changes and after a
// 401.
func TestTokenRefresh(t *testing.T) {
	srv := newEmulator(t, emulator.Options{Token: "token-1"})
	_ = srv.CreateEventType("et", 1, nil)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, srv, "et")
	cfg.TokenFile = path
	h := startConsumer(t, cfg)
	s := h.sink()
	publish(t, srv, "et", 0, 5)
	waitFor(t, "first events", func() bool { return s.count(0, 5) == 5 })
	srv.SetToken("token-2") // rotated: requests with token-1 get 401
	publish(t, srv, "et", 5, 10)
	waitFor(t, "401s", func() bool { return srv.Requests(emulator.RouteCommit, http.StatusUnauthorized) >= 2 })
	if err := os.WriteFile(path, []byte("token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "committed with the new token", func() bool { return committedAll(srv, h.c.SubscriptionID(), "et", 1) })
	if st := h.c.Status(); strings.Contains(st.LastError, "token-") {
		t.Fatalf("token leaked into the status: %q", st.LastError)
	}
}

// TestFiveMegabyteEvent: lines of several MB are read whole.
func TestFiveMegabyteEvent(t *testing.T) {
	srv := newEmulator(t, emulator.Options{MaxEventBytes: 8 << 20})
	_ = srv.CreateEventType("et", 1, nil)
	big := strings.Repeat("0123456789abcdef", 5<<20/16)
	ev := []byte(`{"metadata":{"eid":"105a76d8-db49-4144-ace7-e683e8f4ba46","occurred_at":"2024-04-11T08:00:00Z"},"id":1,"big":"` + big + `"}`)
	if err := srv.Publish("et", ev, testEvent(2)); err != nil {
		t.Fatal(err)
	}
	h := startConsumer(t, testConfig(t, srv, "et"))
	b := h.next()
	stored := srv.Events("et", 0)
	if len(b.Events) != 2 || string(b.Events[0]) != string(stored[0]) || len(b.Events[0]) < 5<<20 {
		t.Fatalf("big event: %d events, %d bytes", len(b.Events), len(b.Events[0]))
	}
	h.c.Durable(b)
	waitFor(t, "committed", func() bool { return committedAll(srv, h.c.SubscriptionID(), "et", 1) })
}

// TestTransientErrorsAreRetried: 503, 429 with Retry-After and network
// errors on stream opens and commits are retried.
func TestTransientErrorsAreRetried(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 1, nil)
	srv.FailNext(emulator.RouteCreateSubscription, 1, http.StatusServiceUnavailable, 0)
	srv.FailNext(emulator.RouteStream, 2, http.StatusServiceUnavailable, 0)
	srv.FailNext(emulator.RouteStream, 1, http.StatusTooManyRequests, time.Second)
	srv.FailNext(emulator.RouteCommit, 2, http.StatusInternalServerError, 0)
	publish(t, srv, "et", 0, 5)
	start := time.Now()
	h := startConsumer(t, testConfig(t, srv, "et"))
	h.sink()
	waitFor(t, "committed", func() bool { return committedAll(srv, h.c.SubscriptionID(), "et", 1) })
	if time.Since(start) < time.Second {
		t.Fatal("Retry-After was not honoured")
	}
	if srv.Requests(emulator.RouteCommit, http.StatusInternalServerError) != 2 || srv.Requests(emulator.RouteStream, http.StatusTooManyRequests) != 1 {
		t.Fatal("faults not all hit")
	}
}

// TestForbiddenAndNotFoundAreFatal: Run returns typed errors after logging.
func TestForbiddenAndNotFoundAreFatal(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 1, nil)
	srv.FailNext(emulator.RouteStream, 1, http.StatusForbidden, 0)
	h := startConsumer(t, testConfig(t, srv, "et"))
	var err error
	select {
	case err = <-h.done:
		h.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return on 403")
	}
	var pe *ProblemError
	if !errors.Is(err, ErrForbidden) || !errors.As(err, &pe) || pe.Status != 403 || !Fatal(err) {
		t.Fatalf("err = %v", err)
	}
	if st := h.c.Status(); !st.Fatal || h.c.Ready() {
		t.Fatalf("status after 403: %+v", st)
	}
	if metricValue(h.c.m.fatal.WithLabelValues("et")) != 1 {
		t.Fatal("fatal metric not set")
	}

	h2 := startConsumer(t, testConfig(t, srv, "et"))
	h2.sink()
	waitFor(t, "streaming", h2.c.Streaming)
	req, _ := http.NewRequest(http.MethodDelete, srv.URL()+"/subscriptions/"+h2.c.SubscriptionID(), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete: %v", err)
	}
	select {
	case err = <-h2.done:
		h2.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return on 404")
	}
	if !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("err = %v", err)
	}
}

// TestPauseResume: Pause closes the stream and hands nothing out; batches
// handed out before still commit; Resume reconnects.
func TestPauseResume(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 1, nil)
	publish(t, srv, "et", 0, 5)
	h := startConsumer(t, testConfig(t, srv, "et"))
	b := h.next()
	h.c.Pause()
	waitFor(t, "not streaming", func() bool { return !h.c.Streaming() })
	h.c.Durable(b) // handed out before the pause: committed in the closing window
	sub := h.c.SubscriptionID()
	waitFor(t, "committed while paused", func() bool { return srv.Committed(sub)[0].Offset == b.Cursor.Offset })
	publish(t, srv, "et", 5, 10)
	select {
	case n := <-h.out:
		t.Fatalf("batch while paused: %+v", n.Cursor)
	case <-time.After(300 * time.Millisecond):
	}
	if !h.c.Status().Paused || h.c.Streaming() {
		t.Fatal("status while paused")
	}
	h.c.Resume()
	s := h.sink()
	waitFor(t, "resumed", func() bool { return s.count(5, 10) == 5 })
	waitFor(t, "committed after resume", func() bool { return committedAll(srv, sub, "et", 1) })
}

// TestDrainCommitsAfterCancel: after ctx ends, cursors marked durable during
// the drain are still committed before Run returns.
func TestDrainCommitsAfterCancel(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 1, nil)
	publish(t, srv, "et", 0, 5)
	cfg := testConfig(t, srv, "et")
	cfg.CommitInterval = 500 * time.Millisecond
	h := startConsumer(t, cfg)
	b := h.next()
	h.cancel()
	// The stream closes when ctx ends: from then on only the drain commits
	// (the commit interval is longer than the rest of the test).
	waitFor(t, "the stream closed by the cancel", func() bool { return !h.c.Streaming() })
	h.c.Durable(b)
	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := srv.Committed(h.c.SubscriptionID())[0].Offset; got != b.Cursor.Offset {
		t.Fatalf("committed %s, want %s", got, b.Cursor.Offset)
	}
}

// TestDuplicateBatchGapsAndRetentionSkip: a batch sent twice on one stream
// is dropped, offset gaps are fine, and retention skips raise the alert.
func TestDuplicateBatchGapsAndRetentionSkip(t *testing.T) {
	srv := newEmulator(t, emulator.Options{RetainEvents: 5})
	_ = srv.CreateEventType("et", 1, nil)
	cfg := testConfig(t, srv, "et")
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	// The subscription is initialized at 001-0001--1, then 10 events come and
	// 5 expire before the first stream.
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	publish(t, srv, "et", 0, 10)
	_ = srv.InjectGap("et", 0, 100)
	srv.DuplicateNextBatch("et", 0)
	h := startConsumer(t, cfg)
	s := h.sink()
	waitFor(t, "retained events", func() bool { return s.count(5, 10) == 5 })
	publish(t, srv, "et", 10, 12)
	waitFor(t, "events", func() bool { return s.count(5, 12) == 7 })
	if s.count(0, 5) != 0 {
		t.Fatal("expired events delivered")
	}
	waitFor(t, "committed", func() bool { return committedAll(srv, h.c.SubscriptionID(), "et", 1) })
	if n := metricValue(h.c.m.duplicates.WithLabelValues("et", "0")); n != 1 {
		t.Fatalf("duplicates metric = %v", n)
	}
	for id, n := range s.seen {
		if n != 1 {
			t.Fatalf("event %d handed out %d times", id, n)
		}
	}
	if n := metricValue(h.c.m.retentionSkips.WithLabelValues("et")); n != 1 {
		t.Fatalf("retention skips = %v", n)
	}
	if last := h.c.Status().Partitions[0].ReceivedOffset; last != emulator.Offset(111) {
		t.Fatalf("received offset after the gap: %s", last)
	}
}

// TestRetryFatalKeepsGoing: with RetryFatal a 403 is reported but the
// consumer keeps retrying and streams once access is back.
func TestRetryFatalKeepsGoing(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 1, nil)
	srv.FailNext(emulator.RouteStream, 2, http.StatusForbidden, 0)
	cfg := testConfig(t, srv, "et")
	cfg.RetryFatal = true
	h := startConsumer(t, cfg)
	s := h.sink()
	publish(t, srv, "et", 0, 3)
	waitFor(t, "events after 403s", func() bool { return s.count(0, 3) == 3 })
	if !h.c.Ready() || h.c.Status().Fatal {
		t.Fatal("still fatal after recovering")
	}
	if n := metricValue(h.c.m.errors.WithLabelValues("et", "forbidden")); n != 2 {
		t.Fatalf("forbidden errors = %v", n)
	}
}

// TestSeveralEventTypes: one subscription over two event types; cursors and
// Committed are per event type and partition.
func TestSeveralEventTypes(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("a", 2, []string{"id"})
	_ = srv.CreateEventType("b", 1, nil)
	publish(t, srv, "a", 0, 20)
	publish(t, srv, "b", 100, 110)
	h := startConsumer(t, testConfig(t, srv, "a", "b"))
	s := h.sink()
	waitFor(t, "both event types", func() bool { return s.count(0, 20) == 20 && s.count(100, 110) == 10 })
	sub := h.c.SubscriptionID()
	waitFor(t, "all committed", func() bool {
		cs := srv.Committed(sub)
		return len(cs) == 3 && cs[0].Offset == srv.NewestOffset("a", 0) && cs[1].Offset == srv.NewestOffset("a", 1) && cs[2].Offset == srv.NewestOffset("b", 0)
	})
	firsts := map[PartitionKey]bool{}
	for _, b := range s.allBatches() {
		if !firsts[b.Cursor.Key()] {
			firsts[b.Cursor.Key()] = true
			if b.Committed == nil || b.Committed.Key() != b.Cursor.Key() {
				t.Fatalf("first batch of %v: Committed %+v", b.Cursor.Key(), b.Committed)
			}
		}
	}
	if len(firsts) != 3 || len(h.c.Status().Partitions) != 3 {
		t.Fatalf("partitions seen %v", firsts)
	}
}

// TestSettleAfterPause: after a pause, Settle commits what is durable,
// forgets a batch that will never be marked durable (Nakadi re-sends it),
// and Run's drain then has nothing left to wait for.
func TestSettleAfterPause(t *testing.T) {
	srv := newEmulator(t, emulator.Options{})
	_ = srv.CreateEventType("et", 1, nil)
	publish(t, srv, "et", 0, 30)
	cfg := testConfig(t, srv, "et")
	cfg.CommitTimeout, cfg.CommitInterval, cfg.DrainTimeout = time.Minute, 20*time.Second, time.Minute // only Settle commits
	h := startConsumer(t, cfg)
	first, second := h.next(), h.next()
	h.c.Pause()
	held := len(second.Events) // second and what follows it can never be committed
	for len(h.out) > 0 {       // handed out before Pause returned
		b := <-h.out
		held += len(b.Events)
		h.c.Durable(b)
	}
	h.c.Durable(first)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	forgot, err := h.c.Settle(ctx)
	if err != nil || forgot != held {
		t.Fatalf("Settle = %d, %v; want %d forgotten", forgot, err, held)
	}
	if got := srv.Committed(h.c.SubscriptionID())[0].Offset; got != first.Cursor.Offset {
		t.Fatalf("committed %s, want %s", got, first.Cursor.Offset)
	}
	if err := h.stop(); err != nil { // fails if the drain waits its minute
		t.Fatal(err)
	}
}
