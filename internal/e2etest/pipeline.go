package e2etest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/pipeline"
)

// StartPipeline runs the pipeline in-process, with its metrics on reg (nil:
// a fresh registry), until stop or the test's end; stop may be called more
// than once. It returns once the pipeline is ready.
func StartPipeline(t testing.TB, cfg *conf.Config, reg prometheus.Registerer) (p *pipeline.Pipeline, stop func()) {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	p, err := pipeline.New(pipeline.Options{Config: cfg, Logger: log, Registry: reg, Now: time.Now,
		Overrides: pipeline.Overrides{FractionalSeconds: true, Tick: 20 * time.Millisecond, DeliveryBackoff: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("pipeline Run: %v", err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("pipeline Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	WaitFor(t, 30*time.Second, "pipeline ready", p.Ready)
	return p, stop
}

// EventType returns the status of one event type of a running pipeline.
func EventType(t testing.TB, p *pipeline.Pipeline, name string) pipeline.EventTypeStatus {
	t.Helper()
	st, err := p.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range st.EventTypes {
		if et.Name == name {
			return et
		}
	}
	t.Fatalf("no event type %s in the status", name)
	return pipeline.EventTypeStatus{}
}

// Flush closes every session and waits for the delivery.
func Flush(t testing.TB, p *pipeline.Pipeline) pipeline.FlushResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := p.Flush(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// SyncBuffer is a bytes.Buffer that logs may be written to from several
// goroutines while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
