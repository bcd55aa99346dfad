package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"materializer/checkpoint"
	"materializer/conf"
	"materializer/pipeline"
	"materializer/pipeline/deliver"
)

// checkpointer takes periodic and on-demand checkpoints of a running
// pipeline (DESIGN.md §10; package checkpoint does the work).
type checkpointer interface {
	// Run takes periodic checkpoints until ctx ends. It first copies the
	// newest local checkpoint to the remote store if that lacks it.
	Run(ctx context.Context) error
	// Take takes a checkpoint now and describes it.
	Take(ctx context.Context) (any, error)
	// List lists local and remote checkpoints, newest first.
	List(ctx context.Context) (any, error)
	// Shutdown takes one more checkpoint of the drained pipeline when
	// checkpoint.on_shutdown is set: every component has stopped, the
	// state is still open. It keeps within the drain budget.
	Shutdown()
	// EventTypeAdded tells of an event type a reload started.
	EventTypeAdded(et pipeline.EventType)
}

// pipelineCheckpointer is the checkpointer of the real pipeline.
type pipelineCheckpointer struct {
	e       *engine
	cfg     conf.Checkpoint
	drain   time.Duration
	log     zerolog.Logger
	taker   *checkpoint.Taker
	source  checkpoint.Source
	openErr error        // the remote store's URL or options are unusable
	stopped atomic.Int64 // unix ns when Run's ctx ended (the drain began)

	mu    sync.Mutex
	types []checkpoint.EventType
}

// newCheckpointer is called once the engine is built (state open).
// types are the engine's compiled event types.
func newCheckpointer(e *engine, types []pipeline.EventType) checkpointer {
	c := &pipelineCheckpointer{
		e: e, cfg: e.cfg.Checkpoint, drain: e.cfg.Daemon.DrainTimeout.Duration(),
		log: e.log.With().Str("component", "checkpointer").Logger(),
	}
	for _, pet := range types {
		c.types = append(c.types, checkpointEventType(pet))
	}
	dataDir := e.cfg.Daemon.DataDir
	c.source.LocalDir = filepath.Join(dataDir, "checkpoints")
	if c.cfg.URL != "" {
		store, err := openCheckpointStore(e.cfg, c.cfg.URL, e.log)
		if err != nil {
			c.openErr = fmt.Errorf("checkpoint.url: %w", err)
		} else {
			c.source.Remote = checkpoint.NewRemote(store, checkpoint.RemoteOptions{Now: e.now})
		}
	}
	c.taker = checkpoint.NewTaker(checkpoint.Options{
		Dir: c.source.LocalDir, StagingDir: filepath.Join(dataDir, "staging"), DB: e.db, EventTypes: c.types,
		Keep: c.cfg.Keep, Remote: c.source.Remote, Now: e.now, Logger: e.log, Registerer: e.reg,
	})
	return c
}

// openCheckpointStore opens the remote checkpoint store: s3:// uses the
// [storage] section's region, endpoint, credentials and encryption.
func openCheckpointStore(cfg *conf.Config, url string, log zerolog.Logger) (deliver.Blobstore, error) {
	return deliver.Open(context.Background(), url, storeOptions(cfg.Storage, log))
}

// checkpointEventType is what a manifest records of an event type's
// config: its state fingerprint and its tables' columns.
func checkpointEventType(pet pipeline.EventType) checkpoint.EventType {
	et := checkpoint.EventType{Name: pet.Name, Fingerprint: pet.Fingerprint}
	for _, t := range pet.Mapping.Tables() {
		tab := checkpoint.Table{Name: t.Name}
		for _, col := range t.Columns {
			tab.Columns = append(tab.Columns, col.Name+":"+string(col.Type))
		}
		et.Tables = append(et.Tables, tab)
	}
	return et
}

func (c *pipelineCheckpointer) Run(ctx context.Context) error {
	if c.openErr != nil {
		return c.openErr
	}
	defer func() { c.stopped.Store(time.Now().UnixNano()) }()
	if !c.waitRecovered(ctx) {
		return nil
	}
	if err := c.taker.Sync(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn().Err(err).Msg("copying the newest local checkpoint to the remote store failed")
	}
	interval := c.cfg.Interval.Duration()
	if interval <= 0 {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := c.taker.Take(ctx, c.e.eng.Do); err != nil && ctx.Err() == nil {
				c.log.Error().Err(err).Msg("periodic checkpoint failed")
			}
		}
	}
}

func (c *pipelineCheckpointer) waitRecovered(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !c.e.eng.Recovered() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

func (c *pipelineCheckpointer) Take(ctx context.Context) (any, error) {
	if c.openErr != nil {
		return nil, c.openErr
	}
	return c.taker.Take(ctx, c.e.eng.Do)
}

func (c *pipelineCheckpointer) List(ctx context.Context) (any, error) {
	if c.openErr != nil {
		return nil, c.openErr
	}
	list, err := c.source.List(ctx)
	if list == nil {
		list = []checkpoint.Info{}
	}
	return list, err
}

// Shutdown runs after every component stopped; the remote copy gets what
// is left of three quarters of the drain budget (an upload cut short is
// finished by the next start's Sync).
func (c *pipelineCheckpointer) Shutdown() {
	if !c.cfg.OnShutdown || c.openErr != nil {
		return
	}
	start := time.Unix(0, c.stopped.Load())
	if c.stopped.Load() == 0 {
		start = time.Now()
	}
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(c.drain*3/4))
	defer cancel()
	res, err := c.taker.Take(ctx, checkpoint.Now)
	if err != nil {
		c.log.Error().Err(err).Msg("shutdown checkpoint failed")
		return
	}
	c.log.Info().Str("id", res.ID).Str("remote_error", res.RemoteError).Msg("shutdown checkpoint taken")
}

func (c *pipelineCheckpointer) EventTypeAdded(pet pipeline.EventType) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types = append(c.types, checkpointEventType(pet))
	c.taker.SetEventTypes(c.types)
}
