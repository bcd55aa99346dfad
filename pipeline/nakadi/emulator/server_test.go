package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// event returns a valid business event with a key field.
func event(id int) []byte {
	return fmt.Appendf(nil, `{"metadata":{"eid":"105a76d8-db49-4144-ace7-%012d","occurred_at":"1996-12-19T16:39:57-08:00"},"id":%d,"text":"<&>"}`, id, id)
}

func newTestServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// do sends a request and returns status, header and body.
func do(t *testing.T, method, url string, body any, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func subscribe(t *testing.T, s *Server, readFrom string, ets ...string) string {
	t.Helper()
	code, _, body := do(t, "POST", s.URL()+"/subscriptions",
		map[string]any{"owning_application": "app", "consumer_group": "g", "event_types": ets, "read_from": readFrom})
	if code != 201 && code != 200 {
		t.Fatalf("create subscription: %d %s", code, body)
	}
	var sub struct{ ID string }
	_ = json.Unmarshal(body, &sub)
	return sub.ID
}

// wireBatch is a decoded stream line.
type wireBatch struct {
	Cursor Cursor            `json:"cursor"`
	Events []json.RawMessage `json:"events"`
	Info   *struct {
		Debug string `json:"debug"`
	} `json:"info"`
}

// rawStream is a stream read with encoding/json, for checking the wire.
type rawStream struct {
	id    string
	lines chan wireBatch
	errc  chan error
	stop  context.CancelFunc
}

func openStream(t *testing.T, s *Server, sub, query string) *rawStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/subscriptions/"+sub+"/events?"+query, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-json-stream" {
		t.Errorf("content type %q", ct)
	}
	rs := &rawStream{id: resp.Header.Get("X-Nakadi-StreamId"), lines: make(chan wireBatch, 1000), errc: make(chan error, 1), stop: cancel}
	go func() {
		defer resp.Body.Close()
		br := bufio.NewReaderSize(resp.Body, 1<<20)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				rs.errc <- err
				close(rs.lines)
				return
			}
			var b wireBatch
			if err := json.Unmarshal(line, &b); err != nil {
				rs.errc <- fmt.Errorf("bad line %q: %w", line, err)
				close(rs.lines)
				return
			}
			rs.lines <- b
		}
	}()
	t.Cleanup(cancel)
	return rs
}

// next returns the next line that satisfies keep, failing after a deadline.
func (rs *rawStream) next(t *testing.T, keep func(wireBatch) bool) wireBatch {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b, ok := <-rs.lines:
			if !ok {
				t.Fatalf("stream ended: %v", <-rs.errc)
			}
			if keep == nil || keep(b) {
				return b
			}
		case <-deadline:
			t.Fatal("no matching line")
		}
	}
}

func withEvents(b wireBatch) bool { return len(b.Events) > 0 }

// commit posts cursors and returns the status and body.
func commit(t *testing.T, s *Server, sub, stream string, cs ...Cursor) (int, []byte) {
	t.Helper()
	code, _, body := do(t, "POST", s.URL()+"/subscriptions/"+sub+"/cursors", map[string]any{"items": cs}, "X-Nakadi-StreamId", stream)
	return code, body
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSubscriptionIsIdempotent(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.CreateEventType("a", 2, nil)
	_ = s.CreateEventType("b", 1, nil)
	req := map[string]any{"owning_application": "app", "event_types": []string{"a", "b"}, "consumer_group": "g"}
	code1, h1, b1 := do(t, "POST", s.URL()+"/subscriptions", req)
	req["event_types"] = []string{"b", "a"}
	req["read_from"] = "begin" // ignored on a repeat
	code2, _, b2 := do(t, "POST", s.URL()+"/subscriptions", req)
	var s1, s2 subscription
	_ = json.Unmarshal(b1, &s1)
	_ = json.Unmarshal(b2, &s2)
	if code1 != 201 || code2 != 200 || s1.ID == "" || s1.ID != s2.ID || s2.ReadFrom != "end" {
		t.Fatalf("create: %d %d %+v %+v", code1, code2, s1, s2)
	}
	if h1.Get("Location") != "/subscriptions/"+s1.ID || h1.Get("Content-Location") == "" {
		t.Fatalf("headers: %v", h1)
	}
	if code, _, _ := do(t, "GET", s.URL()+"/subscriptions/"+s1.ID, nil); code != 200 {
		t.Fatalf("get: %d", code)
	}
	if code, _, _ := do(t, "GET", s.URL()+"/subscriptions/nope/cursors", nil); code != 404 {
		t.Fatalf("unknown subscription: %d", code)
	}
	req["event_types"] = []string{"missing"}
	if code, _, _ := do(t, "POST", s.URL()+"/subscriptions", req); code != 422 {
		t.Fatalf("unknown event type: %d", code)
	}
	// Before initialization, cursors are empty; PATCH {"items":[]} initializes.
	_, _, body := do(t, "GET", s.URL()+"/subscriptions/"+s1.ID+"/cursors", nil)
	if !strings.Contains(string(body), `"items":[]`) {
		t.Fatalf("cursors before init: %s", body)
	}
	if code, _, _ := do(t, "PATCH", s.URL()+"/subscriptions/"+s1.ID+"/cursors", map[string]any{"items": []any{}}); code != 204 {
		t.Fatalf("patch: %d", code)
	}
	if got := s.Committed(s1.ID); len(got) != 3 || got[0].Offset != "001-0001--1" {
		t.Fatalf("committed after init: %+v", got)
	}
}

func TestPublishEnrichesValidatesAndPartitions(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.CreateEventType("et", 4, []string{"key.id"})
	evs := []json.RawMessage{}
	for i := range 40 {
		evs = append(evs, fmt.Appendf(nil, `{"metadata":{"eid":"105a76d8-db49-4144-ace7-%012d","occurred_at":"2024-01-01T00:00:00Z"},"key":{"id":%d}}`, i, i%5))
	}
	code, _, body := do(t, "POST", s.URL()+"/event-types/et/events", evs, "X-Flow-Id", "flow-1")
	if code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	seen := map[string]int{}
	total := 0
	for p := range 4 {
		for _, e := range s.Events("et", p) {
			var ev struct {
				Metadata map[string]string
				Key      struct{ ID json.Number }
			}
			if err := json.Unmarshal(e, &ev); err != nil {
				t.Fatal(err)
			}
			m := ev.Metadata
			if m["partition"] != fmt.Sprint(p) || m["event_type"] != "et" || m["received_at"] == "" || m["flow_id"] != "flow-1" || m["version"] == "" {
				t.Fatalf("enrichment: %s", e)
			}
			if old, ok := seen[ev.Key.ID.String()]; ok && old != p {
				t.Fatalf("key %s in partitions %d and %d", ev.Key.ID, old, p)
			}
			seen[ev.Key.ID.String()] = p
			total++
		}
	}
	if total != 40 {
		t.Fatalf("stored %d events", total)
	}
	bad := []json.RawMessage{evs[0], []byte(`{"metadata":{"eid":"not-a-uuid","occurred_at":"2024-01-01T00:00:00Z"},"key":{"id":1}}`), evs[1]}
	code, _, body = do(t, "POST", s.URL()+"/event-types/et/events", bad)
	var items []BatchItemResponse
	_ = json.Unmarshal(body, &items)
	if code != 422 || len(items) != 3 || items[1].PublishingStatus != "failed" || items[0].PublishingStatus != "aborted" || items[0].Step != "validating" || items[2].Step != "none" {
		t.Fatalf("invalid eid: %d %s", code, body)
	}
	if err := s.Publish("et", []byte(`{"metadata":{"eid":"105a76d8-db49-4144-ace7-e683e8f4ba46","occurred_at":"2024-01-01T00:00:00Z","received_at":"2024-01-01T00:00:00Z"},"key":{"id":1}}`)); err == nil {
		t.Fatal("received_at set by the producer was accepted")
	}
	if err := s.Publish("et", event(1)); err == nil {
		t.Fatal("missing partition key field was accepted")
	}
	if code, _, _ := do(t, "POST", s.URL()+"/event-types/nope/events", evs[:1]); code != 404 {
		t.Fatalf("unknown event type: %d", code)
	}
	s.FailNext(RoutePublish, 1, 207, 0)
	code, _, body = do(t, "POST", s.URL()+"/event-types/et/events", evs[:4])
	if code != 207 || strings.Count(string(body), `"submitted"`) != 2 {
		t.Fatalf("forced 207: %d %s", code, body)
	}
	s.FailNext(RoutePublish, 1, 503, 0)
	if code, _, _ := do(t, "POST", s.URL()+"/event-types/et/events", evs[:1]); code != 503 {
		t.Fatalf("forced 503: %d", code)
	}
}

func TestStreamLayoutKeepAlivesAndWindow(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.CreateEventType("et", 1, nil)
	sub := subscribe(t, s, "begin", "et")
	for i := range 25 {
		_ = s.Publish("et", event(i))
	}
	st := openStream(t, s, sub, "batch_limit=10&max_uncommitted_events=20&batch_flush_timeout=0.05&commit_timeout=2")
	if !isUUID(st.id) {
		t.Fatalf("stream id %q", st.id)
	}
	first := st.next(t, nil)
	if first.Info == nil || first.Info.Debug != "Stream started" || len(first.Events) != 10 || first.Cursor.Offset != Offset(9) || first.Cursor.CursorToken == "" {
		t.Fatalf("first batch: %+v", first)
	}
	second := st.next(t, nil)
	if len(second.Events) != 10 || second.Cursor.Offset != Offset(19) {
		t.Fatalf("second batch: %+v", second)
	}
	// The window of 20 is full: only keep-alives now, with the last sent cursor.
	for range 3 {
		if ka := st.next(t, nil); len(ka.Events) != 0 || ka.Cursor.Offset != Offset(19) {
			t.Fatalf("expected keep-alive at 19, got %+v", ka)
		}
	}
	if code, _ := commit(t, s, sub, st.id, first.Cursor); code != 204 {
		t.Fatalf("commit: %d", code)
	}
	if b := st.next(t, withEvents); len(b.Events) != 5 || b.Cursor.Offset != Offset(24) {
		t.Fatalf("after commit: %+v", b)
	}
	code, body := commit(t, s, sub, st.id, first.Cursor, second.Cursor)
	if code != 200 || !strings.Contains(string(body), `"outdated"`) || !strings.Contains(string(body), `"committed"`) {
		t.Fatalf("mixed commit: %d %s", code, body)
	}
}

func TestCommitErrors(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.CreateEventType("et", 2, nil)
	sub := subscribe(t, s, "begin", "et")
	_ = s.Publish("et", event(1), event(2))
	st := openStream(t, s, sub, "batch_flush_timeout=0.05&batch_limit=1")
	b := st.next(t, withEvents)
	b2 := st.next(t, withEvents)
	if b.Cursor.Partition != "0" || b2.Cursor.Partition != "1" {
		t.Fatalf("partitions %s %s", b.Cursor.Partition, b2.Cursor.Partition)
	}
	if code, _, _ := do(t, "POST", s.URL()+"/subscriptions/"+sub+"/cursors", map[string]any{"items": []Cursor{b.Cursor}}); code != 400 {
		t.Fatalf("missing stream id: %d", code)
	}
	if code, _ := commit(t, s, sub, "not-a-uuid", b.Cursor); code != 422 {
		t.Fatalf("bad stream id: %d", code)
	}
	if code, body := commit(t, s, sub, newUUID(), b.Cursor); code != 422 || !strings.Contains(string(body), "Session with stream id") {
		t.Fatalf("unknown session: %d %s", code, body)
	}
	if code, _ := commit(t, s, sub, st.id); code != 422 {
		t.Fatalf("empty items: %d", code)
	}
	bad := b.Cursor
	bad.Offset = "garbage"
	if code, _ := commit(t, s, sub, st.id, bad); code != 422 {
		t.Fatalf("bad offset: %d", code)
	}
	// A second stream takes one partition: committing it with the first
	// stream's id is refused.
	st2 := openStream(t, s, sub, "batch_flush_timeout=0.05&batch_limit=1")
	if code, _ := commit(t, s, sub, st.id, b2.Cursor); code != 204 {
		t.Fatalf("commit: %d", code)
	}
	waitFor(t, "rebalance", func() bool { return len(s.Assignment(sub)) == 2 && s.Assignment(sub)["et/1"] == st2.id })
	other := Cursor{EventType: "et", Partition: "1", Offset: Offset(-1), CursorToken: "t"}
	if code, body := commit(t, s, sub, st.id, other); code != 422 || !strings.Contains(string(body), "cannot be committed") {
		t.Fatalf("foreign partition: %d %s", code, body)
	}
	// A third stream has no slot.
	if code, _, body := do(t, "GET", s.URL()+"/subscriptions/"+sub+"/events", nil); code != 409 || !strings.Contains(string(body), "No free slots") {
		t.Fatalf("third stream: %d %s", code, body)
	}
}

func TestCommitTimeoutClosesAndResends(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.CreateEventType("et", 1, nil)
	sub := subscribe(t, s, "begin", "et")
	_ = s.Publish("et", event(1), event(2))
	st := openStream(t, s, sub, "batch_flush_timeout=0.05&batch_limit=1&commit_timeout=1&max_uncommitted_events=100")
	b1 := st.next(t, withEvents)
	if code, _ := commit(t, s, sub, st.id, b1.Cursor); code != 204 {
		t.Fatalf("commit: %d", code)
	}
	st.next(t, withEvents) // event 2, never committed
	info := st.next(t, func(b wireBatch) bool { return b.Info != nil })
	if info.Info.Debug != "Commit timeout reached" {
		t.Fatalf("info: %+v", info.Info)
	}
	if err := <-st.errc; !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	if code, _ := commit(t, s, sub, st.id, b1.Cursor); code != 422 {
		t.Fatalf("commit after commit timeout: %d", code)
	}
	st2 := openStream(t, s, sub, "batch_flush_timeout=0.05&batch_limit=5")
	if b := st2.next(t, withEvents); len(b.Events) != 1 || b.Cursor.Offset != Offset(1) {
		t.Fatalf("re-sent: %+v", b)
	}
}

func TestClosingWindowAndHandover(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.CreateEventType("et", 2, nil)
	sub := subscribe(t, s, "begin", "et")
	_ = s.Publish("et", event(1), event(2), event(3), event(4))
	st1 := openStream(t, s, sub, "batch_flush_timeout=0.05&batch_limit=10&commit_timeout=2&max_uncommitted_events=100")
	got := map[string]wireBatch{}
	for len(got) < 2 {
		b := st1.next(t, withEvents)
		got[b.Cursor.Partition] = b
	}
	// A second stream joins: one partition is reassigning until st1 commits it.
	st2 := openStream(t, s, sub, "batch_flush_timeout=0.05&batch_limit=10")
	// The split was decided when st2 opened: one partition waits for
	// st1's commit; nothing moved yet.
	if a, moving := s.Assignment(sub), s.Reassigning(sub); a["et/0"] != st1.id || a["et/1"] != st1.id || len(moving) != 1 {
		t.Fatalf("handed over before commit: owners %v, moving %v", a, moving)
	}
	_, _, stats := do(t, "GET", s.URL()+"/subscriptions/"+sub+"/stats", nil)
	if !strings.Contains(string(stats), `"reassigning"`) {
		t.Fatalf("stats: %s", stats)
	}
	moving := "1"
	if code, _ := commit(t, s, sub, st1.id, got[moving].Cursor); code != 204 {
		t.Fatalf("commit: %d", code)
	}
	waitFor(t, "handover", func() bool { return s.Assignment(sub)["et/"+moving] == st2.id })
	// st2 gets the partition after the committed offset: a keep-alive only.
	if b := st2.next(t, nil); len(b.Events) != 0 || b.Cursor.Partition != moving {
		t.Fatalf("st2 first line: %+v", b)
	}
	// st1 drops; the session stays for its closing window: commits work.
	st1.stop()
	waitFor(t, "closing", func() bool { return len(s.Streams(sub)) == 1 })
	if code, _ := commit(t, s, sub, st1.id, got["0"].Cursor); code != 204 {
		t.Fatalf("commit in closing window: %d", code)
	}
	waitFor(t, "handover after closing", func() bool { return len(s.Assignment(sub)) == 2 && s.Assignment(sub)["et/0"] == st2.id })
	if s.OpenStreams(sub) != 1 {
		t.Fatalf("open streams = %d", s.OpenStreams(sub))
	}
}

func TestResetCursorsClosesStreams(t *testing.T) {
	s := newTestServer(t, Options{MaxCommitTimeout: 2 * time.Second})
	_ = s.CreateEventType("et", 1, nil)
	sub := subscribe(t, s, "begin", "et")
	_ = s.Publish("et", event(1), event(2), event(3))
	st := openStream(t, s, sub, "batch_flush_timeout=0.05&batch_limit=10")
	b := st.next(t, withEvents)
	if code, _ := commit(t, s, sub, st.id, b.Cursor); code != 204 {
		t.Fatalf("commit: %d", code)
	}
	code, _, _ := do(t, "PATCH", s.URL()+"/subscriptions/"+sub+"/cursors",
		map[string]any{"items": []Cursor{{EventType: "et", Partition: "0", Offset: Offset(0)}}})
	if code != 204 {
		t.Fatalf("reset: %d", code)
	}
	if info := st.next(t, func(b wireBatch) bool { return b.Info != nil }); info.Info.Debug != "Resetting subscription cursors" {
		t.Fatalf("info %+v", info.Info)
	}
	if got := s.Committed(sub)[0].Offset; got != Offset(0) {
		t.Fatalf("committed after reset %s", got)
	}
	st2 := openStream(t, s, sub, "batch_flush_timeout=0.05&batch_limit=10")
	if b := st2.next(t, withEvents); len(b.Events) != 2 {
		t.Fatalf("after reset: %+v", b)
	}
}

func TestRetentionGapsDuplicatesCutAndToken(t *testing.T) {
	s := newTestServer(t, Options{RetainEvents: 3, Token: "secret"})
	_ = s.CreateEventType("et", 1, nil)
	if code, _, _ := do(t, "GET", s.URL()+"/subscriptions/x", nil); code != 401 {
		t.Fatalf("without token: %d", code)
	}
	auth := []string{"Authorization", "Bearer secret"}
	code, _, body := do(t, "POST", s.URL()+"/subscriptions", map[string]any{"owning_application": "a", "event_types": []string{"et"}, "read_from": "begin"}, auth...)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var sv subscription
	_ = json.Unmarshal(body, &sv)
	do(t, "PATCH", s.URL()+"/subscriptions/"+sv.ID+"/cursors", map[string]any{"items": []any{}}, auth...)
	for i := range 5 {
		_ = s.Publish("et", event(i))
	}
	_ = s.InjectGap("et", 0, 10)
	_ = s.Publish("et", event(5))
	s.DuplicateNextBatch("et", 0)
	s.SetToken("")
	st := openStream(t, s, sv.ID, "batch_flush_timeout=0.05&batch_limit=2&max_uncommitted_events=100&commit_timeout=1")
	b := st.next(t, nil)
	if b.Info == nil || !strings.Contains(b.Info.Debug, "skipped events due to retention time passed, count: 3") {
		t.Fatalf("retention info: %+v", b.Info)
	}
	dup := st.next(t, nil)
	if dup.Cursor.Offset != b.Cursor.Offset || len(dup.Events) != len(b.Events) {
		t.Fatalf("duplicate: %+v vs %+v", dup, b)
	}
	if last := st.next(t, withEvents); last.Cursor.Offset != Offset(15) {
		t.Fatalf("after gap: %+v", last.Cursor)
	}
	s.CutNextStreamAfter(1)
	if err := st.stopAndWait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "slot", func() bool { return s.OpenStreams(sv.ID) == 0 })
	st2 := openStream(t, s, sv.ID, "batch_flush_timeout=0.05&batch_limit=1&commit_timeout=1")
	st2.next(t, withEvents)
	for range st2.lines {
	}
	if err := <-st2.errc; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut stream ended with %v", err)
	}
}

// stopAndWait closes the client side of a stream.
func (rs *rawStream) stopAndWait() error {
	rs.stop()
	for range rs.lines {
	}
	return nil
}
