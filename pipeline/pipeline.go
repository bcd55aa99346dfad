package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"materializer/checkpoint"
	"materializer/conf"
	"materializer/pipeline"
	"materializer/pipeline/compact"
	"materializer/pipeline/deliver"
	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
	"materializer/pipeline/notify"
	"materializer/state"
)

// engine is the real pipeline of `materializer run`: consumers (one Nakadi
// subscription per event type) → engine (state + staging files) →
// deliverer (storage, then notices). Its components are Run(ctx) functions
// composed with errgroup: the first failure cancels the rest.
type engine struct {
	cfg  *conf.Config
	log  zerolog.Logger // root logger, handed to the components
	plog zerolog.Logger // this wiring's own logs
	reg  prometheus.Registerer
	now  func() time.Time
	opts pipelineOverrides

	db        *state.DB
	eng       *pipeline.Engine
	deliverer *pipeline.Deliverer
	publisher *notify.Publisher
	consumers map[string]*nakadi.Consumer
	names     []string

	ckpt checkpointer // periodic and on-demand checkpoints (checkpointer.go)

	csv       flatten.CSV
	maxStaged atomic.Int64 // storage.max_staged_bytes (reloadable)
	in        chan *nakadi.Batch
	group     *errgroup.Group
	groupCtx  context.Context

	recovered atomic.Bool
	mu        sync.Mutex
	paused    map[string]bool // paused by an operator (admin API)
	pressured bool            // paused by backpressure
	bp        *backpressureMetrics
}

// pipelineOverrides are knobs tests and the demo set; zero values are the
// production defaults.
type pipelineOverrides struct {
	FractionalSeconds bool          // emulator: sub-second stream parameters
	Tick              time.Duration // engine timer resolution
	DeliveryBackoff   time.Duration // cap of the deliverer's retry backoff (default 1 min)
}

// newEngine builds the pipeline; nothing runs and nothing is opened until Run.
func newEngine(deps pipelineDeps) (*engine, error) {
	e := &engine{
		cfg: deps.Config, log: deps.Log, plog: deps.Log.With().Str("component", "pipeline").Logger(),
		reg: deps.Registry, now: deps.Now, opts: deps.Overrides,
		paused: map[string]bool{}, consumers: map[string]*nakadi.Consumer{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	for _, et := range e.cfg.EventTypes {
		e.names = append(e.names, et.Name)
	}
	sort.Strings(e.names)
	e.bp = newBackpressureMetrics(e.reg)
	return e, nil
}

// Run opens the state and runs every component until ctx ends or one fails.
func (e *engine) Run(ctx context.Context) error {
	dataDir := e.cfg.Daemon.DataDir
	if err := checkpoint.CheckNoPending(dataDir); err != nil {
		return err
	}
	db, err := state.Open(filepath.Join(dataDir, "state"), state.Options{Logger: e.log})
	if err != nil {
		return err
	}
	e.db = db
	defer db.Close()
	if err := e.build(ctx); err != nil {
		return err
	}
	defer func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.publisher != nil {
			e.publisher.Close()
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	in := make(chan *nakadi.Batch, 8)
	e.group, e.groupCtx, e.in = g, gctx, in
	g.Go(func() error { return e.eng.Run(gctx, in) })
	g.Go(func() error { return e.deliverer.Run(gctx) })
	g.Go(func() error { e.watchRecovery(gctx); return nil })
	g.Go(func() error { e.backpressure(gctx); return nil })
	for _, name := range e.names {
		c := e.consumers[name]
		g.Go(func() error {
			if err := c.Run(gctx, in); err != nil {
				return fmt.Errorf("consumer %s: %w", name, err)
			}
			return nil
		})
	}
	if e.publisher != nil {
		g.Go(func() error { e.ensureStream(gctx, e.publisher); return nil })
	}
	if e.ckpt != nil {
		g.Go(func() error { return e.ckpt.Run(gctx) })
	}
	err = g.Wait()
	e.recovered.Store(false)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil && ctx.Err() != nil && e.ckpt != nil {
		e.ckpt.Shutdown() // a clean stop: checkpoint.on_shutdown
	}
	return err
}

// build creates the store, the publisher, the engine, the deliverer and the
// consumers.
func (e *engine) build(ctx context.Context) (err error) {
	c := e.cfg
	opts := storeOptions(c.Storage, e.log)
	opts.Registerer, opts.Now = e.reg, e.now
	store, err := deliver.Open(ctx, c.Storage.URL, opts)
	if err != nil {
		return err
	}
	var announcer pipeline.Announcer
	if c.Notify.NATSURL != "" {
		if e.publisher, err = e.connectNotify(ctx, c.Notify, e.reg); err != nil {
			return err
		}
		announcer = e.publisher
	}
	staging := filepath.Join(c.Daemon.DataDir, "staging")
	e.deliverer = pipeline.NewDeliverer(pipeline.DelivererOptions{
		DB: e.db, StagingDir: staging, Store: store, Announcer: announcer,
		Concurrency: c.Storage.UploadConcurrency, MaxBackoff: e.opts.DeliveryBackoff, Now: e.now, Logger: e.log, Registerer: e.reg,
	})
	e.csv = c.CSV.Flatten()
	e.maxStaged.Store(c.Storage.MaxStagedBytes.Bytes())
	types, err := e.eventTypes()
	if err != nil {
		return err
	}
	e.eng, err = pipeline.New(pipeline.Options{
		DB: e.db, StagingDir: staging, Compression: c.Storage.Compression, CompressionLevel: c.Storage.CompressionLevel,
		RollMaxBytes: c.Storage.RollMaxBytes.Bytes(), RollMaxRows: int64(c.Storage.RollMaxRows),
		RollMaxAge: c.Storage.RollMaxAge.Duration(), CSV: e.csv, MaxUncommitted: c.Nakadi.MaxUncommittedEvents,
		Tick: e.opts.Tick, Now: e.now, Logger: e.log, Metrics: pipeline.NewMetrics(e.reg), Sealed: e.deliverer.Wake,
		KeyCacheBytes: c.Daemon.KeyCacheBytes.Bytes(),
	}, types)
	if err != nil {
		return err
	}
	e.ckpt = newCheckpointer(e, types)
	return nil
}

// storeOptions are the [storage] section's options for deliver.Open (the
// file store and the checkpoint store use the same credentials).
func storeOptions(s conf.Storage, log zerolog.Logger) deliver.Options {
	return deliver.Options{
		Region: s.Region, Endpoint: s.Endpoint, AccessKeyIDFile: s.AccessKeyIDFile,
		SecretAccessKeyFile: s.SecretAccessKeyFile, SSE: s.SSE, KMSKeyID: s.SSEKMSKeyID, Logger: log,
	}
}

// eventTypes compiles the configured event types for the engine and creates
// their consumers (whose Durable the engine calls).
func (e *engine) eventTypes() ([]pipeline.EventType, error) {
	var out []pipeline.EventType
	for i := range e.cfg.EventTypes {
		et := &e.cfg.EventTypes[i]
		pet, err := compileEventType(et, e.csv)
		if err != nil {
			return nil, err
		}
		consumer, err := e.newConsumer(et.Name)
		if err != nil {
			return nil, err
		}
		e.consumers[et.Name] = consumer
		pet.Durable = consumer.Durable
		out = append(out, pet)
	}
	return out, nil
}

// compileEventType turns a validated config event type into the engine's.
func compileEventType(et *conf.EventType, csv flatten.CSV) (pipeline.EventType, error) {
	path := func(s string) flatten.Path {
		p, _ := flatten.ParsePath(s) // validated by conf
		return p
	}
	ordering, err := compact.ParseOrdering(et.Ordering)
	if err != nil {
		return pipeline.EventType{}, err
	}
	m, err := flatten.Compile(et.TableSpecs(), csv)
	if err != nil {
		return pipeline.EventType{}, fmt.Errorf("event type %s: %w", et.Name, err)
	}
	out := pipeline.EventType{
		Name: et.Name, Ordering: ordering, EIDPath: path(et.EIDPath), OccurredPath: path(et.OccurredAtPath),
		Window:  compact.Window{Gap: et.SessionGap.Duration(), Max: et.SessionMax.Duration(), Retention: et.KeyRetention.Duration()},
		Mapping: m, Fingerprint: pipeline.Fingerprint(et.PartitionKey, et.OrderingKey, et.Ordering),
	}
	for _, k := range et.PartitionKey {
		out.PartitionKey = append(out.PartitionKey, path(k))
	}
	if ordering != compact.Arrival {
		out.OrderingKey = path(et.OrderingKey)
	}
	return out, nil
}

func (e *engine) newConsumer(eventType string) (*nakadi.Consumer, error) {
	cfg := nakadiConfig(e.cfg.Nakadi, eventType)
	cfg.FractionalSeconds, cfg.RetryFatal, cfg.Now, cfg.Logger = e.opts.FractionalSeconds, true, e.now, e.log
	cfg.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"subscription_event_type": eventType}, e.reg)
	return nakadi.New(cfg)
}

// nakadiConfig is the client config of one event type's subscription (one
// per event type). The daemon and `checkpoint restore` must agree on it, or
// a restore would reset another subscription's cursors.
func nakadiConfig(n conf.Nakadi, eventType string) nakadi.Config {
	return nakadi.Config{
		URL: n.URL, TokenFile: n.TokenFile, OwningApplication: n.OwningApplication, ConsumerGroup: n.ConsumerGroup,
		EventTypes: []string{eventType}, ReadFrom: n.ReadFrom, BatchLimit: n.BatchLimit,
		BatchFlushTimeout: n.BatchFlushTimeout.Duration(), MaxUncommittedEvents: n.MaxUncommittedEvents,
		CommitTimeout: n.CommitTimeout.Duration(), StatsInterval: n.StatsInterval.Duration(),
	}
}

// watchRecovery marks the pipeline recovered once the engine published its
// first status (it does so right after recovery).
func (e *engine) watchRecovery(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if e.eng.Recovered() {
			e.recovered.Store(true)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ensureStream creates the JetStream stream, retrying while NATS is down
// (notices wait in the outbox meanwhile).
func (e *engine) ensureStream(ctx context.Context, p *notify.Publisher) {
	backoff := time.Second
	for {
		err := p.EnsureStream(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		e.plog.Warn().Err(err).Dur("retry_in", backoff).Msg("creating the notice stream failed; notices wait in the outbox")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// Ready: recovered, and every event type not paused by an operator streams.
func (e *engine) Ready() bool {
	if !e.recovered.Load() {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, c := range e.consumers {
		if !e.paused[name] && !e.pressured && !c.Ready() {
			return false
		}
	}
	return true
}

// Healthy feeds the systemd watchdog: the engine must still be stepping.
func (e *engine) Healthy() error {
	if e.eng == nil {
		return nil
	}
	return e.eng.Healthy()
}

// Flush closes the sessions of one event type (all when ""), seals its
// files and waits until they are delivered.
func (e *engine) Flush(ctx context.Context, eventType string) (any, error) {
	if err := e.running(eventType); err != nil {
		return nil, err
	}
	sealed, err := e.eng.Flush(ctx, eventType)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(sealed))
	for i, o := range sealed {
		keys[i] = o.Key
	}
	delivered, err := e.deliverer.Wait(ctx, eventType, keys)
	if err != nil {
		return nil, err
	}
	return map[string]any{"event_type": eventType, "files": delivered}, nil
}

func (e *engine) running(eventType string) error {
	if !e.recovered.Load() {
		return errNotRunning
	}
	if eventType != "" && e.consumers[eventType] == nil {
		return fmt.Errorf("%w: %s", errUnknownEventType, eventType)
	}
	return nil
}

// Pause stops consuming one event type until Resume.
func (e *engine) Pause(_ context.Context, eventType string) error {
	if err := e.running(eventType); err != nil || eventType == "" {
		return errors.Join(err, errIf(eventType == "", errUnknownEventType))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.paused[eventType] = true
	e.consumers[eventType].Pause()
	e.plog.Info().Str("event_type", eventType).Msg("paused by operator")
	return nil
}

// Resume restarts consuming one event type (unless backpressure holds it).
func (e *engine) Resume(_ context.Context, eventType string) error {
	if err := e.running(eventType); err != nil || eventType == "" {
		return errors.Join(err, errIf(eventType == "", errUnknownEventType))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.paused, eventType)
	if !e.pressured {
		e.consumers[eventType].Resume()
	}
	e.plog.Info().Str("event_type", eventType).Msg("resumed by operator")
	return nil
}

func errIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

// TakeCheckpoint takes a checkpoint now (POST /v1/checkpoints).
func (e *engine) TakeCheckpoint(ctx context.Context) (any, error) {
	if e.ckpt == nil || !e.recovered.Load() {
		return nil, errNotRunning
	}
	return e.ckpt.Take(ctx)
}

// Checkpoints lists the checkpoints (GET /v1/checkpoints).
func (e *engine) Checkpoints(ctx context.Context) (any, error) {
	if e.ckpt == nil {
		return nil, errNotRunning
	}
	return e.ckpt.List(ctx)
}
