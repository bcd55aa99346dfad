package notify_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/natstest"
	"materializer/pipeline/notify"
)

// clock is a settable time for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mismatch(t *testing.T, reg *prometheus.Registry, setting string) float64 {
	t.Helper()
	return gauge(t, reg, "materializer_notify_stream_mismatch", map[string]string{"setting": setting})
}

// TestEnsureStreamReportsDifferences: an existing stream with fewer
// replicas, a shorter duplicate window, memory storage and a work-queue
// retention is used as it is; each difference is logged once (a check
// that finds the same says nothing) and shown in the metrics, and a fix by
// the operator shows at the next periodic check.
func TestEnsureStreamReportsDifferences(t *testing.T) {
	srv := natstest.Start(t)
	js, _ := jetstream.New(srv.Connect(t))
	cfg := jetstream.StreamConfig{Name: notify.DefaultStream, Subjects: []string{"materializer.files.>"},
		Duplicates: 10 * time.Minute, Storage: jetstream.MemoryStorage, Retention: jetstream.WorkQueuePolicy}
	if _, err := js.CreateStream(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var logs logBuffer
	clk := &clock{t: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
	p := connect(t, notify.Options{URLs: srv.URL(), Replicas: 3, Registerer: reg, Logger: logs.logger(), Now: clk.now})
	if err := p.EnsureStream(ctxT(t)); err != nil {
		t.Fatalf("EnsureStream: %v, want the stream used as it is", err)
	}
	for setting, text := range map[string]string{
		"replicas":         "stream has 1 replicas, notify.stream_replicas is 3",
		"duplicate_window": "de-duplicates Msg-Ids for 10m0s, notify.duplicate_window is 2h0m0s",
		"storage":          "in memory",
		"retention":        "retention is WorkQueue",
	} {
		if !strings.Contains(logs.String(), text) || mismatch(t, reg, setting) != 1 {
			t.Errorf("%s: mismatch %v, log:\n%s", setting, mismatch(t, reg, setting), logs.String())
		}
	}
	for _, setting := range []string{"subjects", "sealed", "no_ack", "mirror"} {
		if mismatch(t, reg, setting) != 0 {
			t.Errorf("%s reported", setting)
		}
	}
	if r := gauge(t, reg, "materializer_notify_stream_replicas", nil); r != 1 {
		t.Errorf("materializer_notify_stream_replicas = %v, want 1", r)
	}
	if err := p.Publish(ctxT(t), "materializer.files.a", "k1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	reports := strings.Count(logs.String(), `"setting":`)
	if err := p.EnsureStream(ctxT(t)); err != nil || strings.Count(logs.String(), `"setting":`) != reports {
		t.Fatalf("a second check: %v, reported again:\n%s", err, logs.String())
	}

	cfg.Duplicates = 2 * time.Hour // the operator fixes the window
	if _, err := js.UpdateStream(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	clk.add(9 * time.Minute)
	if err := p.Publish(ctxT(t), "materializer.files.a", "k2", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if mismatch(t, reg, "duplicate_window") != 1 {
		t.Fatal("checked again before ten minutes")
	}
	clk.add(2 * time.Minute)
	if err := p.Publish(ctxT(t), "materializer.files.a", "k3", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if mismatch(t, reg, "duplicate_window") != 0 || mismatch(t, reg, "replicas") != 1 {
		t.Fatalf("after the fix: duplicate_window %v, replicas %v", mismatch(t, reg, "duplicate_window"), mismatch(t, reg, "replicas"))
	}
}

// TestEnsureStreamRefusesUnusable: a stream where no notice can be stored
// and acknowledged is refused with a permanent error that says why;
// Publish fails the same way (the notice stays in the caller's outbox).
func TestEnsureStreamRefusesUnusable(t *testing.T) {
	for _, tc := range []struct {
		setting, text string
		setup         func(t *testing.T, js jetstream.JetStream)
	}{
		{"sealed", "is sealed", func(t *testing.T, js jetstream.JetStream) {
			cfg := createStream(t, js, jetstream.StreamConfig{Name: notify.DefaultStream, Subjects: []string{"materializer.files.>"}})
			cfg.Sealed = true
			if _, err := js.UpdateStream(ctxT(t), cfg); err != nil {
				t.Fatal(err)
			}
		}},
		{"no_ack", "does not acknowledge", func(t *testing.T, js jetstream.JetStream) {
			createStream(t, js, jetstream.StreamConfig{Name: notify.DefaultStream, Subjects: []string{"materializer.files.>"}, NoAck: true})
		}},
		{"mirror", "is a mirror of ORIGIN", func(t *testing.T, js jetstream.JetStream) {
			createStream(t, js, jetstream.StreamConfig{Name: "ORIGIN", Subjects: []string{"origin.>"}})
			createStream(t, js, jetstream.StreamConfig{Name: notify.DefaultStream, Mirror: &jetstream.StreamSource{Name: "ORIGIN"}})
		}},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			srv := natstest.Start(t)
			js, _ := jetstream.New(srv.Connect(t))
			tc.setup(t, js)
			reg := prometheus.NewRegistry()
			p := connect(t, notify.Options{URLs: srv.URL(), Registerer: reg})
			err := p.EnsureStream(ctxT(t))
			if !errors.Is(err, notify.ErrStreamMismatch) || notify.Retryable(err) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("EnsureStream: %v, want a permanent ErrStreamMismatch saying %q", err, tc.text)
			}
			if mismatch(t, reg, tc.setting) != 1 {
				t.Errorf("materializer_notify_stream_mismatch{setting=%q} not set", tc.setting)
			}
			if err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`)); notify.Retryable(err) {
				t.Fatalf("Publish: %v, want the permanent refusal", err)
			}
		})
	}
}

func createStream(t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.StreamConfig {
	t.Helper()
	if _, err := js.CreateStream(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestEnsureStreamReplicasNeedCluster: a standalone server cannot hold a
// stream of three replicas: a permanent error that names the key.
func TestEnsureStreamReplicasNeedCluster(t *testing.T) {
	srv := natstest.Start(t)
	p := connect(t, notify.Options{URLs: srv.URL(), Replicas: 3})
	err := p.EnsureStream(ctxT(t))
	if !errors.Is(err, notify.ErrConfig) || notify.Retryable(err) || !strings.Contains(err.Error(), "notify.stream_replicas = 3 needs a NATS cluster") {
		t.Fatalf("EnsureStream: %v", err)
	}
}
