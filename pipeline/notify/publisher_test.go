package notify_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/natstest"
	"materializer/pipeline/notify"
)

func TestEnsureStreamCreates(t *testing.T) {
	srv := natstest.Start(t)
	p := connect(t, notify.Options{URLs: srv.URL()})
	for range 2 { // idempotent
		if err := p.EnsureStream(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	js, _ := jetstream.New(srv.Connect(t))
	s, err := js.Stream(ctxT(t), notify.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != "materializer.files.>" || cfg.Storage != jetstream.FileStorage ||
		cfg.Duplicates != 2*time.Hour || cfg.MaxAge != 30*24*time.Hour {
		t.Fatalf("stream config: %+v", cfg)
	}
}

func TestEnsureStreamAcceptsWiderStream(t *testing.T) {
	srv := natstest.Start(t)
	js, _ := jetstream.New(srv.Connect(t))
	if _, err := js.CreateStream(ctxT(t), jetstream.StreamConfig{Name: "NOTICES", Subjects: []string{"materializer.>"}}); err != nil {
		t.Fatal(err)
	}
	p := connect(t, notify.Options{URLs: srv.URL(), Stream: "NOTICES"})
	if err := p.Publish(ctxT(t), "materializer.files.a.b", "k1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if n := len(streamMsgs(t, srv.Connect(t), "NOTICES")); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

// An existing stream for other subjects gets ours added (a second prefix,
// or notify.subject_prefix changed by a reload).
func TestEnsureStreamAddsSubject(t *testing.T) {
	srv := natstest.Start(t)
	js, _ := jetstream.New(srv.Connect(t))
	if _, err := js.CreateStream(ctxT(t), jetstream.StreamConfig{Name: notify.DefaultStream, Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	p := connect(t, notify.Options{URLs: srv.URL()})
	if err := p.EnsureStream(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctxT(t), notify.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, []string{"other.>", "materializer.files.>"}) {
		t.Fatalf("subjects %q", got)
	}
	if err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
}

// When the subject cannot be added (another stream owns it), the error
// names both sides and is permanent.
func TestEnsureStreamMismatch(t *testing.T) {
	srv := natstest.Start(t)
	js, _ := jetstream.New(srv.Connect(t))
	for name, subj := range map[string]string{notify.DefaultStream: "other.>", "THEIRS": "materializer.files.>"} {
		if _, err := js.CreateStream(ctxT(t), jetstream.StreamConfig{Name: name, Subjects: []string{subj}}); err != nil {
			t.Fatal(err)
		}
	}
	p := connect(t, notify.Options{URLs: srv.URL()})
	err := p.EnsureStream(ctxT(t))
	if !errors.Is(err, notify.ErrStreamMismatch) || !errors.Is(err, notify.ErrPermanent) ||
		!strings.Contains(err.Error(), `"other.>"`) || !strings.Contains(err.Error(), "materializer.files.>") {
		t.Fatalf("EnsureStream: %v, want a clear ErrStreamMismatch", err)
	}
	err = p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`))
	if notify.Retryable(err) {
		t.Fatalf("Publish: %v, want permanent", err)
	}
}

// TestPublishDeduplicates: repeated Msg-Ids are stored once; a duplicate
// ack counts as success.
func TestPublishDeduplicates(t *testing.T) {
	srv := natstest.Start(t)
	reg := prometheus.NewRegistry()
	p := connect(t, notify.Options{URLs: srv.URL(), Registerer: reg})
	n := notify.Notice{ID: "a/b/main/x.csv", EventType: "article.updated", Kind: "main"}
	for range 3 {
		if err := p.PublishNotice(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
	}
	msgs := streamMsgs(t, srv.Connect(t), notify.DefaultStream)
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "materializer.files.article.updated" || m.Header.Get("Nats-Msg-Id") != n.ID || string(m.Data) != string(n.Marshal()) {
		t.Fatalf("stored %s %v %s", m.Subject, m.Header, m.Data)
	}
	if d := counter(t, reg, "materializer_notify_published_total", map[string]string{"result": "duplicate"}); d != 2 {
		t.Fatalf("duplicates counted: %v, want 2", d)
	}
}

// TestPublishWhileNATSDown: Publish fails with a retryable error while
// the server is down and succeeds after it is back; notices retried by the
// caller through two outages end up stored exactly once each.
func TestPublishWhileNATSDown(t *testing.T) {
	srv := natstest.Start(t)
	p := connect(t, notify.Options{URLs: srv.URL()})
	if err := p.EnsureStream(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	eventually(t, "disconnect noticed", func() bool { return !p.Connected() })
	err := p.Publish(ctxT(t), "materializer.files.a", "id-0", []byte(`{}`))
	if !errors.Is(err, notify.ErrUnavailable) || !notify.Retryable(err) {
		t.Fatalf("Publish while down: %v, want ErrUnavailable", err)
	}
	// The loop may publish up to `allowed` ids; each outage starts with
	// ids still to go, so it interrupts publishing for real.
	const n = 30
	var acked, allowed atomic.Int64
	done := make(chan error, 1)
	go func() { done <- outboxLoop(ctxT(t), p, n, &acked, &allowed) }()
	for range 2 {
		before := acked.Load()
		allowed.Add(10)
		srv.Restart()
		eventually(t, "progress after restart", func() bool { return acked.Load() > before })
		srv.Shutdown()
	}
	allowed.Store(n + 1)
	srv.Restart()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range streamMsgs(t, srv.Connect(t), notify.DefaultStream) {
		ids[m.Header.Get("Nats-Msg-Id")]++
	}
	if len(ids) != n+1 {
		t.Fatalf("%d distinct ids stored, want %d", len(ids), n+1)
	}
	for id, c := range ids {
		if c != 1 {
			t.Fatalf("%s stored %d times", id, c)
		}
	}
}

// outboxLoop publishes id-0..id-n in order like the outbox: retry the
// head with backoff until it is acknowledged, then the next. It gives up
// when a notice fails for a minute.
func outboxLoop(ctx context.Context, p *notify.Publisher, n int, acked, allowed *atomic.Int64) error {
	deadline := time.Now().Add(time.Minute)
	for i := 0; i <= n; {
		if int64(i) >= allowed.Load() {
			time.Sleep(time.Millisecond)
			deadline = time.Now().Add(time.Minute)
			continue
		}
		err := p.Publish(ctx, "materializer.files.a", fmt.Sprintf("id-%d", i), []byte(fmt.Sprintf(`{"i":%d}`, i)))
		switch {
		case err == nil:
			i++
			acked.Add(1)
			deadline = time.Now().Add(time.Minute)
		case !notify.Retryable(err):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("still failing: %w", err)
		default:
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// TestPublishRecreatesDeletedStream: an operator deleted the stream; the
// next Publish creates it again.
func TestPublishRecreatesDeletedStream(t *testing.T) {
	srv := natstest.Start(t)
	p := connect(t, notify.Options{URLs: srv.URL()})
	if err := p.Publish(ctxT(t), "materializer.files.a", "k1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(srv.Connect(t))
	if err := js.DeleteStream(ctxT(t), notify.DefaultStream); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctxT(t), "materializer.files.a", "k2", []byte(`{}`)); err != nil {
		t.Fatalf("Publish after the stream was deleted: %v", err)
	}
	if n := len(streamMsgs(t, srv.Connect(t), notify.DefaultStream)); n != 1 {
		t.Fatalf("%d messages in the new stream, want 1", n)
	}
}
