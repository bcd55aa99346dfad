package emulator

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStreamTimeoutGivesAClosingWindow(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.CreateEventType("et", 1, nil)
	sub := subscribe(t, s, "begin", "et")
	_ = s.Publish("et", event(1))
	st := openStream(t, s, sub, "batch_flush_timeout=0.05&stream_timeout=0.3&commit_timeout=5")
	b := st.next(t, withEvents)
	info := st.next(t, func(b wireBatch) bool { return b.Info != nil && b.Info.Debug != "Stream started" })
	if info.Info.Debug != "Stream timeout reached" {
		t.Fatalf("info %+v", info.Info)
	}
	// Closing: the connection stays open and silent; a commit ends it.
	select {
	case l := <-st.lines:
		t.Fatalf("data while closing: %+v", l)
	case <-time.After(200 * time.Millisecond):
	}
	if len(s.Streams(sub)) != 0 || s.OpenStreams(sub) != 1 {
		t.Fatalf("streams %v open %d", s.Streams(sub), s.OpenStreams(sub))
	}
	if code, _ := commit(t, s, sub, st.id, b.Cursor); code != 204 {
		t.Fatalf("commit in window: %d", code)
	}
	if err := <-st.errc; !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	waitFor(t, "session gone", func() bool { return s.OpenStreams(sub) == 0 })
}

func TestKeepAliveAndStreamLimits(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.CreateEventType("et", 1, nil)
	sub := subscribe(t, s, "begin", "et")
	st := openStream(t, s, sub, "batch_flush_timeout=0.02&stream_keep_alive_limit=3")
	for range 3 {
		st.next(t, nil)
	}
	if err := <-st.errc; !errors.Is(err, io.EOF) {
		t.Fatalf("keep-alive limit: %v", err)
	}
	_ = s.Publish("et", event(1), event(2), event(3))
	st2 := openStream(t, s, sub, "batch_flush_timeout=0.02&batch_limit=5&stream_limit=2&max_uncommitted_events=10")
	b := st2.next(t, withEvents)
	if len(b.Events) != 2 {
		t.Fatalf("stream_limit caps the batch: %d", len(b.Events))
	}
	if code, _ := commit(t, s, sub, st2.id, b.Cursor); code != 204 {
		t.Fatalf("commit: %d", code)
	}
	if info := st2.next(t, func(b wireBatch) bool { return b.Info != nil && strings.HasPrefix(b.Info.Debug, "Stream limit") }); info.Info.Debug != "Stream limit in events reached: 2" {
		t.Fatalf("info: %+v", info.Info)
	}
}

func TestForceCommitTimeoutAndResetConflict(t *testing.T) {
	s := newTestServer(t, Options{MaxCommitTimeout: time.Second})
	_ = s.CreateEventType("et", 1, nil)
	sub := subscribe(t, s, "begin", "et")
	_ = s.Publish("et", event(1))
	st := openStream(t, s, sub, "batch_flush_timeout=0.05")
	b := st.next(t, withEvents)
	if err := s.ForceCommitTimeout(st.id); err != nil {
		t.Fatal(err)
	}
	if info := st.next(t, func(b wireBatch) bool { return b.Info != nil && b.Info.Debug != "Stream started" }); info.Info.Debug != "Commit timeout reached" {
		t.Fatalf("info %+v", info.Info)
	}
	if code, _ := commit(t, s, sub, st.id, b.Cursor); code != 422 {
		t.Fatalf("commit after forced timeout: %d", code)
	}
	if code, _, _ := do(t, "GET", s.URL()+"/subscriptions/"+sub+"/events?commit_timeout=61", nil); code != 422 {
		t.Fatalf("commit_timeout above max: %d", code)
	}
	if code, _, _ := do(t, "GET", s.URL()+"/subscriptions/"+sub+"/events?batch_limit=x", nil); code != 400 {
		t.Fatalf("non-numeric: %d", code)
	}
	// While a reset is in progress, new streams and other resets get 409.
	s.mu.Lock()
	s.subs[sub].resetting = true
	s.mu.Unlock()
	if code, _, body := do(t, "GET", s.URL()+"/subscriptions/"+sub+"/events", nil); code != 409 || !strings.Contains(string(body), "Resetting") {
		t.Fatalf("stream during reset: %d %s", code, body)
	}
	if code, _, _ := do(t, "PATCH", s.URL()+"/subscriptions/"+sub+"/cursors", map[string]any{"items": []Cursor{{EventType: "et", Partition: "0", Offset: "BEGIN"}}}); code != 409 {
		t.Fatalf("reset during reset: %d", code)
	}
	s.mu.Lock()
	s.subs[sub].resetting = false
	s.mu.Unlock()
	st3 := openStream(t, s, sub, "batch_flush_timeout=0.05")
	done := make(chan int)
	go func() {
		code, _, _ := do(t, "PATCH", s.URL()+"/subscriptions/"+sub+"/cursors", map[string]any{"items": []Cursor{{EventType: "et", Partition: "0", Offset: "BEGIN"}}})
		done <- code
	}()
	st3.next(t, func(b wireBatch) bool { return b.Info != nil && b.Info.Debug == "Resetting subscription cursors" })
	if code := <-done; code != 204 {
		t.Fatalf("reset: %d", code)
	}
	if got := s.Committed(sub)[0].Offset; got != Offset(-1) {
		t.Fatalf("reset to BEGIN: %s", got)
	}
}

func TestDataEventsGzipAndPostStream(t *testing.T) {
	s := newTestServer(t, Options{})
	_ = s.AddEventType(EventType{Name: "orders", Partitions: 3, PartitionKeyFields: []string{"order_number"}, Category: CategoryData})
	ev := `{"metadata":{"eid":"105a76d8-db49-4144-ace7-e683e8f4ba46","occurred_at":"1996-12-19T16:39:57-08:00"},"data_op":"U","data_type":"pennybags:order","data":{"order_number":"24873243241"}}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("[" + ev + "," + ev + "]"))
	_ = zw.Close()
	req, _ := http.NewRequest("POST", s.URL()+"/event-types/orders/events", &gz)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("gzip publish: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	n := 0
	for p := range 3 {
		n += len(s.Events("orders", p))
		if k := len(s.Events("orders", p)); k != 0 && k != 2 {
			t.Fatalf("same key in several partitions")
		}
	}
	if n != 2 {
		t.Fatalf("stored %d", n)
	}
	if err := s.Publish("orders", []byte(`{"metadata":{"eid":"105a76d8-db49-4144-ace7-e683e8f4ba46","occurred_at":"1996-12-19T16:39:57-08:00"},"data_op":"X","data_type":"t","data":{"order_number":"1"}}`)); err == nil {
		t.Fatal("bad data_op accepted")
	}
	sub := subscribe(t, s, "begin", "orders")
	body, _ := json.Marshal(map[string]any{"batch_flush_timeout": 0.05, "batch_limit": 5})
	resp, err = http.Post(s.URL()+"/subscriptions/"+sub+"/events", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Nakadi-StreamId") == "" {
		t.Fatalf("POST stream: %v %v", err, resp.Status)
	}
	resp.Body.Close()
}
