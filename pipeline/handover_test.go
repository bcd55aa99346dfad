package pipeline_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/internal/e2etest"
	"materializer/pipeline"
)

// running is a pipeline run by a test that checks how Run ends.
type running struct {
	p    *pipeline.Pipeline
	stop func() error // cancels Run, waits for it, releases the data dir
	logs *e2etest.SyncBuffer
}

func runPipeline(t *testing.T, cfg *conf.Config) *running {
	t.Helper()
	logs := &e2etest.SyncBuffer{}
	log := zerolog.New(zerolog.MultiLevelWriter(logs, zerolog.NewTestWriter(t))).Level(zerolog.InfoLevel)
	p, err := pipeline.New(pipeline.Options{Config: cfg, Logger: log, Registry: prometheus.NewRegistry(), Now: time.Now,
		Overrides: pipeline.Overrides{FractionalSeconds: true, Tick: 20 * time.Millisecond, DeliveryBackoff: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			if err := p.Close(); err != nil {
				t.Errorf("pipeline Close: %v", err)
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	e2etest.WaitFor(t, 30*time.Second, "pipeline ready", p.Ready)
	return &running{p: p, stop: stop, logs: logs}
}

// A stop is a handover: Run stops reading, closes every open session,
// seals and delivers every file and commits before it returns nil; the
// data dir holds nothing undelivered.
func TestStopHandsEverythingOver(t *testing.T) {
	env := newDeliveryEnv(t)
	r := runPipeline(t, env.cfg)
	events := e2etest.Generate(11, 200, 3000)
	e2etest.Publish(t, env.nk, events)
	waitReceived(t, r.p, len(events))
	if open := status(t, r.p).Counters.Open; open == 0 {
		t.Fatal("no open session before the stop: the test proves nothing")
	}
	sub := status(t, r.p).Subscription
	if err := r.stop(); err != nil {
		t.Fatalf("Run after a stop: %v", err)
	}
	if !strings.Contains(r.logs.String(), "handover complete") {
		t.Error("no \"handover complete\" log line")
	}
	if held := e2etest.ReadHeld(t, filepath.Join(env.dir, "data"), "article.updated"); !held.Empty() {
		t.Errorf("the data dir holds undelivered work after the stop: %+v", held)
	}
	files := e2etest.ReadDelivered(t, filepath.Join(env.dir, "storage"))
	e2etest.CheckDelivered(t, files, e2etest.Expect(events))
	e2etest.CheckNotices(t, env.ns.URL(), files)
	for p, c := range env.nk.Committed(sub) {
		if c.Offset != env.nk.NewestOffset("article.updated", p) {
			t.Errorf("partition %d committed at %s, newest %s", p, c.Offset, env.nk.NewestOffset("article.updated", p))
		}
	}
}

// With NATS down a stop keeps everything on disk, says so at error level
// and returns an error; started again on the same data dir, the daemon
// delivers it all.
func TestStopWithNATSDownKeepsEverything(t *testing.T) {
	env := newDeliveryEnv(t)
	env.cfg.Daemon.DrainTimeout = conf.Dur(3 * time.Second)
	r := runPipeline(t, env.cfg)
	env.ns.Shutdown()
	events := e2etest.Generate(12, 200, 2000)
	e2etest.Publish(t, env.nk, events)
	waitReceived(t, r.p, len(events))
	err := r.stop()
	if !errors.Is(err, pipeline.ErrHandoverIncomplete) {
		t.Fatalf("Run after a stop with NATS down: %v, want ErrHandoverIncomplete", err)
	}
	if logs := r.logs.String(); !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, "handover incomplete: this work stays in the data dir") {
		t.Errorf("no error-level report of what stays:\n%s", logs)
	}
	held := e2etest.ReadHeld(t, filepath.Join(env.dir, "data"), "article.updated")
	if held.Outbox == 0 || held.Staging == 0 || held.OpenSessions != 0 || held.OpenFiles != 0 {
		t.Fatalf("held after the stop: %+v; want sessions closed and files sealed, waiting in the outbox", held)
	}
	env.ns.Restart()
	r = runPipeline(t, env.cfg)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	files := e2etest.ReadDelivered(t, filepath.Join(env.dir, "storage"))
	e2etest.CheckDelivered(t, files, e2etest.Expect(events))
	e2etest.CheckNotices(t, env.ns.URL(), files)
}

// With daemon.on_stop = "keep" a stop commits what is durable and leaves
// the open sessions for the next start on this data dir.
func TestStopKeepLeavesSessions(t *testing.T) {
	env := newDeliveryEnv(t)
	env.cfg.Daemon.OnStop = conf.OnStopKeep
	r := runPipeline(t, env.cfg)
	events := e2etest.Generate(13, 200, 2000)
	e2etest.Publish(t, env.nk, events)
	waitReceived(t, r.p, len(events))
	open := status(t, r.p).Counters.Open
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if held := e2etest.ReadHeld(t, filepath.Join(env.dir, "data"), "article.updated"); open == 0 || held.OpenSessions != open || held.OpenFiles == 0 {
		t.Fatalf("held after a stop that keeps: %+v, %d sessions were open", held, open)
	}
}

// A drain hands everything over and leaves the pipeline idle but alive:
// not ready, drained in the status, no stream open; undrain consumes again.
func TestDrainAndUndrain(t *testing.T) {
	env := newDeliveryEnv(t)
	r := runPipeline(t, env.cfg)
	first := e2etest.Generate(14, 200, 4000)
	e2etest.Publish(t, env.nk, first[:2000])
	waitReceived(t, r.p, 2000)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := r.p.Drain(ctx)
	if err != nil || !res.Left.Empty() || len(res.Files) == 0 {
		t.Fatalf("drain: %v, %+v", err, res)
	}
	s := status(t, r.p)
	if r.p.Ready() || s.State != "drained" || s.Counters.Open != 0 || s.OpenFiles != 0 || s.Delivery.PendingFiles != 0 {
		t.Fatalf("after the drain: ready %v, %+v", r.p.Ready(), s)
	}
	e2etest.WaitFor(t, 10*time.Second, "no stream open", func() bool { return env.nk.OpenStreams(s.Subscription) == 0 })
	if err := r.p.Resume(ctx, "article.updated"); err != nil || status(t, r.p).State != "drained" {
		t.Fatalf("an operator's resume of one event type undid the drain: %v", err)
	}
	e2etest.Publish(t, env.nk, first[2000:])
	if err := r.p.Undrain(ctx); err != nil {
		t.Fatal(err)
	}
	e2etest.WaitFor(t, 30*time.Second, "ready again", r.p.Ready)
	waitReceived(t, r.p, len(first))
	e2etest.Flush(t, r.p)
	files := e2etest.ReadDelivered(t, filepath.Join(env.dir, "storage"))
	e2etest.CheckDelivered(t, files, e2etest.Expect(first))
	e2etest.CheckNotices(t, env.ns.URL(), files)
}
