package nakadi

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"materializer/pipeline/nakadi/emulator"
)

// testEvent is a valid business event keyed by id.
func testEvent(id int) []byte {
	return fmt.Appendf(nil, `{"metadata":{"eid":"105a76d8-db49-4144-ace7-%012d","occurred_at":"2024-04-11T08:00:00Z"},"id":%d,"note":"a \"quoted\" ] } text"}`, id, id)
}

func publish(t *testing.T, srv *emulator.Server, et string, from, to int) {
	t.Helper()
	var evs [][]byte
	for i := from; i < to; i++ {
		evs = append(evs, testEvent(i))
	}
	if err := srv.Publish(et, evs...); err != nil {
		t.Fatal(err)
	}
}

// eventID returns the id field of a test event.
func eventID(t *testing.T, raw []byte) int {
	var e struct{ ID int }
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("event %q: %v", raw, err)
	}
	return e.ID
}

func newEmulator(t *testing.T, opts emulator.Options) *emulator.Server {
	t.Helper()
	srv := emulator.NewServer(opts)
	t.Cleanup(srv.Close)
	return srv
}

// testConfig is a config with fast timings for the emulator.
func testConfig(t *testing.T, srv *emulator.Server, ets ...string) Config {
	return Config{
		URL: srv.URL(), OwningApplication: "materializer", ConsumerGroup: "test", EventTypes: ets, ReadFrom: "begin",
		BatchLimit: 10, BatchFlushTimeout: 50 * time.Millisecond, MaxUncommittedEvents: 1000,
		CommitTimeout: 2 * time.Second, CommitInterval: 100 * time.Millisecond, StatsInterval: 100 * time.Millisecond,
		DrainTimeout: 2 * time.Second, BackoffMin: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond,
		RequestTimeout: 5 * time.Second, FractionalSeconds: true,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel), Registerer: prometheus.NewRegistry(),
	}
}

// harness runs one consumer; its batches arrive on out.
type harness struct {
	t      *testing.T
	c      *Consumer
	out    chan *Batch
	cancel context.CancelFunc
	done   chan error
}

func startConsumer(t *testing.T, cfg Config) *harness {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, c: c, out: make(chan *Batch, 16), cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- c.Run(ctx, h.out) }()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop cancels Run and waits for it, failing if it takes too long.
func (h *harness) stop() error {
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err
		return err
	case <-time.After(20 * time.Second):
		h.t.Fatal("Run did not return after cancel")
		return nil
	}
}

// next returns the next batch or fails after a deadline.
func (h *harness) next() *Batch {
	h.t.Helper()
	select {
	case b := <-h.out:
		return b
	case <-time.After(10 * time.Second):
		h.t.Fatal("no batch")
		return nil
	}
}

// sink plays the pipeline: it takes every batch, records its events and
// marks it durable (or holds it while hold() is true).
type sink struct {
	mu      sync.Mutex
	seen    map[int]int // event id → times received
	batches []*Batch
	lost    []*Batch
	held    []*Batch
	hold    bool
}

func (h *harness) sink() *sink {
	s := &sink{seen: map[int]int{}}
	go func() {
		for b := range h.out {
			s.take(h, b)
		}
	}()
	return s
}

func (s *sink) take(h *harness, b *Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Lost {
		s.lost = append(s.lost, b)
		return
	}
	s.batches = append(s.batches, b)
	for _, e := range b.Events {
		s.seen[eventID(h.t, e)]++
	}
	if s.hold {
		s.held = append(s.held, b)
		return
	}
	h.c.Durable(b)
}

// release marks held batches durable and stops holding.
func (s *sink) release(c *Consumer) {
	s.mu.Lock()
	held := s.held
	s.held, s.hold = nil, false
	s.mu.Unlock()
	for _, b := range held {
		c.Durable(b)
	}
}

func (s *sink) setHold(v bool) {
	s.mu.Lock()
	s.hold = v
	s.mu.Unlock()
}

// count returns how many distinct ids in [from, to) were seen.
func (s *sink) count(from, to int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := from; i < to; i++ {
		if s.seen[i] > 0 {
			n++
		}
	}
	return n
}

func (s *sink) lostNotices() []*Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Batch(nil), s.lost...)
}

func (s *sink) allBatches() []*Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Batch(nil), s.batches...)
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// committedAll reports whether the emulator's committed cursors reached the
// newest offset of every partition.
func committedAll(srv *emulator.Server, subID, et string, partitions int) bool {
	cs := srv.Committed(subID)
	if len(cs) != partitions {
		return false
	}
	for p, c := range cs {
		if c.Offset != srv.NewestOffset(et, p) {
			return false
		}
	}
	return true
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(err)
	}
	if pb.Counter != nil {
		return pb.Counter.GetValue()
	}
	return pb.Gauge.GetValue()
}
