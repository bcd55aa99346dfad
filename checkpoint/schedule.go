package checkpoint

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/internal/datadir"
	"materializer/pipeline/blobstore"
	"materializer/state"
)

// ScheduleOptions configure a Schedule. Its caller (the pipeline) hands it
// the narrow services it needs, so this package never imports the pipeline.
type ScheduleOptions struct {
	DataDir    string
	Interval   time.Duration // 0: no periodic checkpoints
	Keep       int
	URL        string        // remote copy ("" = none): s3:// or file://
	OnShutdown bool          // one more checkpoint after a clean stop
	Drain      time.Duration // the stop's budget (daemon.drain_timeout)
	DB         *state.DB
	EventTypes []EventType
	// OpenStore opens the remote store of URL (s3:// with the [storage]
	// section's region, endpoint, credentials and encryption).
	OpenStore func(url string) (blobstore.Store, error)
	// Quiesce pauses the state writer between two steps (engine.Engine.Do).
	Quiesce Quiesce
	// Recovered reports whether the state writer finished its recovery;
	// periodic checkpoints wait for it.
	Recovered func() bool

	Now        func() time.Time
	Logger     zerolog.Logger
	Registerer prometheus.Registerer
}

// Schedule takes periodic and on-demand checkpoints of a running pipeline.
type Schedule struct {
	o       ScheduleOptions
	log     zerolog.Logger
	taker   *Taker
	source  Source
	openErr error        // the remote store's URL or options are unusable
	stopped atomic.Int64 // unix ns when Run's ctx ended (the drain began)

	mu    sync.Mutex
	types []EventType
}

// NewSchedule prepares a schedule; the state must be open.
func NewSchedule(o ScheduleOptions) *Schedule {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Schedule{o: o, log: o.Logger.With().Str("component", "checkpoint").Logger(), types: o.EventTypes}
	s.source.LocalDir = datadir.Checkpoints(o.DataDir)
	if o.URL != "" {
		store, err := o.OpenStore(o.URL)
		if err != nil {
			s.openErr = fmt.Errorf("checkpoint.url: %w", err)
		} else {
			s.source.Remote = NewRemote(store, RemoteOptions{Now: o.Now})
		}
	}
	s.taker = NewTaker(Options{
		Dir: s.source.LocalDir, StagingDir: datadir.Staging(o.DataDir), DB: o.DB, EventTypes: s.types,
		Keep: o.Keep, Remote: s.source.Remote, Now: o.Now, Logger: o.Logger, Registerer: o.Registerer,
	})
	return s
}

// Run takes periodic checkpoints until ctx ends. It first copies the
// newest local checkpoint to the remote store if that lacks it.
func (s *Schedule) Run(ctx context.Context) error {
	if s.openErr != nil {
		return s.openErr
	}
	defer func() { s.stopped.Store(time.Now().UnixNano()) }()
	if !s.waitRecovered(ctx) {
		return nil
	}
	if err := s.taker.Sync(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Msg("copying the newest local checkpoint to the remote store failed")
	}
	if s.o.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(s.o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := s.taker.Take(ctx, s.o.Quiesce); err != nil && ctx.Err() == nil {
				s.log.Error().Err(err).Msg("periodic checkpoint failed")
			}
		}
	}
}

func (s *Schedule) waitRecovered(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !s.o.Recovered() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// Take takes a checkpoint now.
func (s *Schedule) Take(ctx context.Context) (*Result, error) {
	if s.openErr != nil {
		return nil, s.openErr
	}
	return s.taker.Take(ctx, s.o.Quiesce)
}

// List lists local and remote checkpoints, newest first.
func (s *Schedule) List(ctx context.Context) ([]Info, error) {
	if s.openErr != nil {
		return nil, s.openErr
	}
	list, err := s.source.List(ctx)
	if list == nil {
		list = []Info{}
	}
	return list, err
}

// Shutdown takes one more checkpoint of the drained pipeline when
// checkpoint.on_shutdown is set: every component has stopped, the state is
// still open. The remote copy gets what is left of three quarters of the
// drain budget (an upload cut short is finished by the next start's Sync).
func (s *Schedule) Shutdown() {
	if !s.o.OnShutdown || s.openErr != nil {
		return
	}
	start := time.Unix(0, s.stopped.Load())
	if s.stopped.Load() == 0 {
		start = time.Now()
	}
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(s.o.Drain*3/4))
	defer cancel()
	res, err := s.taker.Take(ctx, Now)
	if err != nil {
		s.log.Error().Err(err).Msg("shutdown checkpoint failed")
		return
	}
	s.log.Info().Str("id", res.ID).Str("remote_error", res.RemoteError).Msg("shutdown checkpoint taken")
}

// EventTypeAdded records an event type a reload started.
func (s *Schedule) EventTypeAdded(et EventType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.types = append(s.types, et)
	s.taker.SetEventTypes(s.types)
}
