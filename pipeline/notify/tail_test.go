package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"materializer/internal/natstest"
	"materializer/pipeline/notify"
)

type tailRun struct {
	out    *logBuffer
	cancel func()
	done   chan error
}

func startTail(t *testing.T, o notify.Options, filter, from string) *tailRun {
	ctx, cancel := context.WithCancel(ctxT(t))
	r := &tailRun{out: &logBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- notify.Tail(ctx, o, filter, from, r.out) }()
	t.Cleanup(cancel)
	return r
}

func (r *tailRun) lines() []string {
	s := strings.TrimSuffix(r.out.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// stop cancels the tail and checks it returned nil.
func (r *tailRun) stop(t *testing.T) []string {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("Tail: %v", err)
	}
	return r.lines()
}

func publishNotices(t *testing.T, p *notify.Publisher, eventType string, ids ...string) []string {
	var bodies []string
	for _, id := range ids {
		n := notify.Notice{ID: id, EventType: eventType, Kind: "main", CreatedAt: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}
		if err := p.PublishNotice(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(n.Marshal()))
	}
	return bodies
}

func TestTailAllAndFilter(t *testing.T) {
	srv := natstest.Start(t)
	o := notify.Options{URLs: srv.URL()}
	p := connect(t, o)
	a := publishNotices(t, p, "article.updated", "a1", "a2")
	b := publishNotices(t, p, "order.created", "b1")

	all := startTail(t, o, "", "all")
	eventually(t, "three lines", func() bool { return len(all.lines()) >= 3 })
	if got, want := strings.Join(all.stop(t), "\n"), strings.Join([]string{a[0], a[1], b[0]}, "\n"); got != want {
		t.Fatalf("tail all:\n%s\nwant\n%s", got, want)
	}

	one := startTail(t, o, notify.Subject(notify.DefaultSubjectPrefix, "order.created"), "all")
	eventually(t, "one line", func() bool { return len(one.lines()) >= 1 })
	c := publishNotices(t, p, "order.created", "b2")
	publishNotices(t, p, "article.updated", "a3")
	eventually(t, "two lines", func() bool { return len(one.lines()) >= 2 })
	if got := one.stop(t); len(got) != 2 || got[0] != b[0] || got[1] != c[0] {
		t.Fatalf("tail order.created: %q", got)
	}
}

func TestTailNewAndLast(t *testing.T) {
	srv := natstest.Start(t)
	o := notify.Options{URLs: srv.URL()}
	p := connect(t, o)
	publishNotices(t, p, "article.updated", "old1", "old2")
	last := publishNotices(t, p, "order.created", "old3")

	lastTail := startTail(t, o, "", "last") // the newest notice of each subject
	eventually(t, "two lines", func() bool { return len(lastTail.lines()) >= 2 })

	newTail := startTail(t, o, "", "new")
	// An ordered consumer is created before Tail reads; publish until the
	// new tail sees something, then check it saw nothing old.
	for i := 0; len(newTail.lines()) == 0; i++ {
		if i > 1000 {
			t.Fatal("new tail saw nothing")
		}
		publishNotices(t, p, "article.updated", fmt.Sprintf("new%d", i))
		time.Sleep(5 * time.Millisecond)
	}
	for _, l := range newTail.stop(t) {
		if strings.Contains(l, `"old`) {
			t.Fatalf("tail new printed an old notice: %s", l)
		}
	}
	got := lastTail.stop(t)
	if len(got) < 2 || !strings.Contains(got[0], `"id":"old2"`) || got[1] != last[0] {
		t.Fatalf("tail last: %q", got)
	}
}

func TestTailBadArguments(t *testing.T) {
	srv := natstest.Start(t)
	err := notify.Tail(ctxT(t), notify.Options{URLs: srv.URL()}, "", "yesterday", &logBuffer{})
	if err == nil || !strings.Contains(err.Error(), "yesterday") {
		t.Fatalf("Tail from=yesterday: %v", err)
	}
	if err := notify.Tail(ctxT(t), notify.Options{URLs: "nats://127.0.0.1:1"}, "", "all", &logBuffer{}); err == nil {
		t.Fatal("Tail with no server: no error")
	}
}
