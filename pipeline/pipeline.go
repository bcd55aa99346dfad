// Package pipeline is the running pipeline of `materializer run`, as one
// component: consumers (one Nakadi subscription per event type) → engine
// (state and staging files) → outbox (storage, then notices), beside
// backpressure, the checkpoint schedule and the notice stream's set-up.
// `run`, the demo and the tests all start it the same way: New, then Run.
//
// Its components are Run(ctx) functions composed with errgroup: the first
// failure cancels the rest, and Run returns after every goroutine exited.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"materializer/checkpoint"
	"materializer/conf"
	"materializer/internal/backoff"
	"materializer/internal/datadir"
	"materializer/pipeline/blobstore"
	"materializer/pipeline/engine"
	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
	"materializer/pipeline/notify"
	"materializer/pipeline/outbox"
	"materializer/state"
)

// Options is what the pipeline is built from.
type Options struct {
	Config   *conf.Config // loaded and validated
	Logger   zerolog.Logger
	Registry prometheus.Registerer // nil: metrics are not registered
	Now      func() time.Time
	// GovernMemory lets the pipeline set Go's soft memory limit (the
	// process's own daemon; not a test that runs several pipelines, nor
	// under GOMEMLIMIT set by the operator): see governMemory.
	GovernMemory bool
	Overrides    Overrides
}

// Overrides are knobs tests and the demo set; zero values are the
// production defaults.
type Overrides struct {
	FractionalSeconds bool          // emulator: sub-second stream parameters
	Tick              time.Duration // engine timer resolution
	DeliveryBackoff   time.Duration // cap of the outbox's retry backoff (default 1 min)
}

// Pipeline is one running pipeline over one data dir.
type Pipeline struct {
	cfg    *conf.Config
	log    zerolog.Logger // root logger, handed to the components
	plog   zerolog.Logger // this wiring's own logs
	reg    prometheus.Registerer
	now    func() time.Time
	opts   Overrides
	govern bool // governMemory runs
	lock   *datadir.Lock
	budget conf.Budget
	// transport is the consumers' HTTP transport: each stream holds a
	// connection, commits, cursor and stats requests share a small pool.
	transport       *http.Transport // Nakadi requests
	streamTransport *http.Transport // Nakadi streams
	buffers         *nakadi.Buffers // batches read, not yet applied

	db        *state.DB
	eng       *engine.Engine
	outbox    *outbox.Outbox
	publisher *notify.Publisher
	ckpt      *checkpoint.Schedule
	csv       flatten.CSV
	bp        *backpressure
	in        chan *nakadi.Batch
	group     *errgroup.Group
	groupCtx  context.Context
	recovered atomic.Bool

	handing chan struct{} // held by the handover under way (handover.go)

	mu        sync.Mutex
	consumers map[string]*nakadi.Consumer
	paused    map[string]bool // paused by an operator (admin API)
	drained   bool            // a handover stopped reading (drain, stop)
}

// stagingHandles is how many staging files hold an OS handle at most, and
// nakadiRequestConns how many connections Nakadi requests of all event
// types use at most; with Pebble's table cache (state) and one connection
// per Nakadi stream, a daemon with a thousand event types stays under 2,048
// descriptors.
const (
	stagingHandles     = 256
	nakadiRequestConns = 64
)

// Errors of the control methods; the admin API maps them to HTTP statuses.
var (
	// ErrNotRunning: the pipeline cannot do this (yet); 503.
	ErrNotRunning = errors.New("pipeline not running")
	// ErrUnknownEventType: no such configured event type; 404.
	ErrUnknownEventType = errors.New("unknown event type")
)

// New takes the data dir's lock and prepares the pipeline; nothing runs and
// the state is not opened until Run. Close releases the lock.
func New(o Options) (*Pipeline, error) {
	p := &Pipeline{
		cfg: o.Config, log: o.Logger, plog: o.Logger.With().Str("component", "pipeline").Logger(),
		reg: o.Registry, now: o.Now, opts: o.Overrides, govern: o.GovernMemory,
		paused: map[string]bool{}, consumers: map[string]*nakadi.Consumer{}, handing: make(chan struct{}, 1),
	}
	if p.now == nil {
		p.now = time.Now
	}
	lock, err := datadir.Create(p.cfg.Daemon.DataDir)
	if err != nil {
		return nil, err
	}
	p.lock = lock
	p.budget = p.cfg.Daemon.MemoryBudget()
	// Requests of all consumers share a bounded set of connections (a
	// thousand event types must not open a thousand more sockets at once);
	// streams, one per event type, have their own.
	p.transport = http.DefaultTransport.(*http.Transport).Clone()
	p.transport.MaxConnsPerHost, p.transport.MaxIdleConnsPerHost = nakadiRequestConns, nakadiRequestConns
	p.streamTransport = http.DefaultTransport.(*http.Transport).Clone()
	p.buffers = nakadi.NewBuffers(p.budget.ConsumerBatches)
	p.bp = newBackpressure(p, o.Registry)
	if o.Registry != nil {
		o.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "materializer_drained",
			Help: "1 while a drain (POST /v1/drain) keeps this member idle.",
		}, func() float64 {
			if p.Drained() {
				return 1
			}
			return 0
		}))
	}
	if o.Registry != nil {
		o.Registry.MustRegister(memoryCollector{p})
	}
	return p, nil
}

// Close releases the data dir's lock; call it after Run returned.
func (p *Pipeline) Close() error { return p.lock.Release() }

// Run opens the state and runs every component until ctx ends or one
// fails; it returns after every goroutine it started exited. When ctx ends
// (a stop) with daemon.on_stop = "handover", every component keeps running
// until a handover gave everything away (handover.go), within
// daemon.drain_timeout; with "keep", they stop at once and what is durable
// stays for the next start on this data dir. It returns nil after a clean
// stop, an error wrapping ErrHandoverIncomplete when the handover left work
// behind (it logs what, at error level), and the error of a component that
// failed on its own.
func (p *Pipeline) Run(ctx context.Context) error {
	dataDir := p.Config().Daemon.DataDir
	if err := checkpoint.CheckNoPending(dataDir); err != nil {
		return err
	}
	db, err := state.Open(datadir.State(dataDir), state.Options{Logger: p.log, CacheSize: p.budget.BlockCache,
		MemTableSize: uint64(p.budget.MemTableSize), MemTables: conf.MemTablesInMemory})
	if err != nil {
		return err
	}
	p.db = db
	defer db.Close()
	if err := p.build(ctx); err != nil {
		return err
	}
	defer func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.publisher != nil {
			p.publisher.Close()
		}
	}()
	// The components run until the stop is done with them (stop), not
	// until ctx ends; sctx ends with ctx, for what must not outlive the
	// signal (the checkpoint schedule).
	runCtx, stopAll := context.WithCancel(context.Background())
	defer stopAll()
	g, gctx := errgroup.WithContext(runCtx)
	sctx, cancelS := context.WithCancel(gctx)
	defer cancelS()
	context.AfterFunc(ctx, cancelS)
	in := make(chan *nakadi.Batch, 8)
	p.group, p.groupCtx, p.in = g, gctx, in
	var stopErr error
	g.Go(func() error { stopErr = p.stop(ctx, gctx, stopAll); return nil })
	g.Go(func() error { return p.eng.Run(gctx, in) })
	g.Go(func() error { return p.outbox.Run(gctx) })
	g.Go(func() error { p.watchRecovery(gctx); return nil })
	g.Go(func() error { p.bp.Run(gctx); return nil })
	if p.govern {
		g.Go(func() error { p.governMemory(gctx); return nil })
	}
	p.mu.Lock() // a reload may add consumers as soon as the engine recovered
	start := maps.Clone(p.consumers)
	p.mu.Unlock()
	for name, c := range start {
		p.startConsumer(name, c)
	}
	if p.publisher != nil {
		g.Go(func() error { p.ensureStream(gctx, p.publisher); return nil })
	}
	g.Go(func() error { return p.ckpt.Run(sctx) })
	err = g.Wait()
	p.recovered.Store(false)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil && ctx.Err() != nil {
		p.ckpt.Shutdown() // a clean stop: checkpoint.on_shutdown
		err = stopErr
	}
	return err
}

// stop waits for ctx to end (a stop) and then, with daemon.on_stop =
// "handover", hands everything over before it stops every component
// (stopAll); a component failing on its own (gctx) ends the wait too. It
// returns the handover's error.
func (p *Pipeline) stop(ctx, gctx context.Context, stopAll func()) error {
	defer stopAll()
	select {
	case <-gctx.Done():
		return nil
	case <-ctx.Done():
	}
	if p.Config().Daemon.OnStop != conf.OnStopHandover {
		return nil
	}
	budget := p.Config().Daemon.DrainTimeout.Duration()
	hctx, cancel := context.WithTimeout(gctx, budget-stopReserve(budget))
	defer cancel()
	if !p.waitRecovered(hctx) {
		p.plog.Error().Str("data_dir", p.Config().Daemon.DataDir).Msg("stopped during recovery: no handover; the state stays for the next start on this data dir")
		return fmt.Errorf("%w: stopped during recovery", ErrHandoverIncomplete)
	}
	res, err := p.handover(hctx)
	p.logHandover(res, err)
	return err
}

// stopReserve is the part of daemon.drain_timeout a stop keeps after the
// handover: the consumers' last commits, the engine's last step, the
// shutdown checkpoint.
func stopReserve(budget time.Duration) time.Duration { return min(budget/4, 10*time.Second) }

// waitRecovered waits until the engine finished its recovery.
func (p *Pipeline) waitRecovered(ctx context.Context) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !p.eng.Recovered() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// logHandover logs a stop's handover: what it did, or — at error level —
// what stays in the data dir and why.
func (p *Pipeline) logHandover(res HandoverResult, err error) {
	l := res.Left
	if err == nil {
		p.plog.Info().Int("files_delivered", len(res.Files)).Int("events_left_to_nakadi", res.Resent).Str("took", res.Took).
			Msg("handover complete: every session closed, every file delivered, every cursor committed")
		return
	}
	p.plog.Error().Err(err).Str("data_dir", p.Config().Daemon.DataDir).Uint64("open_sessions", l.OpenSessions).
		Int("open_files", l.OpenFiles).Int64("open_file_bytes", l.OpenFileBytes).Int64("undelivered_files", l.PendingFiles).
		Int64("undelivered_bytes", l.PendingBytes).Int("uncommitted_events", l.UncommittedEvents).Str("delivery_error", l.DeliveryError).
		Str("took", res.Took).Msg("handover incomplete: this work stays in the data dir; start the daemon on this data dir to deliver it")
}

// startConsumer runs a consumer in the group.
func (p *Pipeline) startConsumer(name string, c *nakadi.Consumer) {
	p.group.Go(func() error {
		if err := c.Run(p.groupCtx, p.in); err != nil {
			return fmt.Errorf("consumer %s: %w", name, err)
		}
		return nil
	})
}

// build creates the store, the publisher, the outbox, the engine, the
// consumers and the checkpoint schedule.
func (p *Pipeline) build(ctx context.Context) (err error) {
	c := p.Config()
	opts := StoreOptions(c.Storage, p.log)
	opts.Registerer, opts.Now = p.reg, p.now
	store, err := blobstore.Open(ctx, c.Storage.URL, opts)
	if err != nil {
		return err
	}
	var announcer outbox.Announcer
	if c.Notify.NATSURL != "" {
		if p.publisher, err = p.connectNotify(ctx, c.Notify, p.reg); err != nil {
			return err
		}
		announcer = p.publisher
	}
	staging := datadir.Staging(c.Daemon.DataDir)
	p.outbox = outbox.New(outbox.Options{
		DB: p.db, StagingDir: staging, Store: store, Announcer: announcer,
		Concurrency: c.Storage.UploadConcurrency, MaxBackoff: p.opts.DeliveryBackoff, Now: p.now, Logger: p.log, Registerer: p.reg,
	})
	p.csv = c.CSV.Flatten()
	types, err := p.eventTypes()
	if err != nil {
		return err
	}
	p.eng, err = engine.New(engine.Options{
		DB: p.db, StagingDir: staging, Compression: c.Storage.Compression, CompressionLevel: c.Storage.CompressionLevel,
		RollMaxBytes: c.Storage.RollMaxBytes.Bytes(), RollMaxRows: int64(c.Storage.RollMaxRows),
		RollMaxAge: c.Storage.RollMaxAge.Duration(), CSV: p.csv, MaxUncommitted: c.Nakadi.MaxUncommittedEvents,
		Limits: c.Limits.Flatten(), MaxRejectedRaw: int(c.Limits.MaxRejectedRawBytes.Bytes()),
		Tick: p.opts.Tick, Now: p.now, Logger: p.log, Metrics: engine.NewMetrics(p.reg), Sealed: p.outbox.Wake,
		KeyCacheBytes: p.budget.KeyCache, MaxOpenFiles: stagingHandles,
	}, types)
	if err != nil {
		return err
	}
	p.ckpt = p.newSchedule(types)
	return nil
}

// newSchedule builds the checkpoint schedule over the open state.
func (p *Pipeline) newSchedule(types []engine.EventType) *checkpoint.Schedule {
	c := p.Config()
	var ets []checkpoint.EventType
	for _, t := range types {
		ets = append(ets, CheckpointEventType(t))
	}
	return checkpoint.NewSchedule(checkpoint.ScheduleOptions{
		DataDir: c.Daemon.DataDir, Interval: c.Checkpoint.Interval.Duration(), Keep: c.Checkpoint.Keep,
		URL: c.Checkpoint.URL, OnShutdown: c.Checkpoint.OnShutdown, Drain: c.Daemon.DrainTimeout.Duration(),
		DB: p.db, EventTypes: ets, OpenStore: func(url string) (blobstore.Store, error) { return OpenCheckpointStore(c, url, p.log) },
		Quiesce: p.eng.Do, Recovered: p.eng.Recovered, Now: p.now, Logger: p.log, Registerer: p.reg,
	})
}

// watchRecovery marks the pipeline recovered once the engine finished its
// recovery.
func (p *Pipeline) watchRecovery(ctx context.Context) {
	if p.waitRecovered(ctx) {
		p.recovered.Store(true)
	}
}

// ensureStream creates the JetStream stream, retrying while NATS is down
// (notices wait in the outbox meanwhile).
func (p *Pipeline) ensureStream(ctx context.Context, pub *notify.Publisher) {
	bo := backoff.Backoff{Min: time.Second, Max: time.Minute}
	for {
		err := pub.EnsureStream(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		delay := bo.Next(0)
		p.plog.Warn().Err(err).Stringer("retry_in", delay).Msg("creating the notice stream failed; notices wait in the outbox")
		if !backoff.Sleep(ctx, delay) {
			return
		}
	}
}

// Ready: recovered, not drained, processing steps succeed (a step that
// fails, or waits for disk space, is not ready), and every event type not
// paused by an operator or by backpressure streams.
func (p *Pipeline) Ready() bool {
	if !p.recovered.Load() || p.eng.Failing() != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drained {
		return false
	}
	for name, c := range p.consumers {
		if !p.held(name) && !c.Ready() {
			return false
		}
	}
	return true
}

// held reports whether an event type's consumer must stay paused: by an
// operator, by a drain or a stop's handover, or by backpressure. Called
// with p.mu held.
func (p *Pipeline) held(name string) bool {
	return p.paused[name] || p.drained || p.bp.engaged()
}

// consumerList returns the consumers, in no particular order.
func (p *Pipeline) consumerList() []*nakadi.Consumer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*nakadi.Consumer, 0, len(p.consumers))
	for _, c := range p.consumers {
		out = append(out, c)
	}
	return out
}

// Healthy feeds the systemd watchdog: the engine must still be stepping.
func (p *Pipeline) Healthy() error {
	if p.eng == nil {
		return nil
	}
	return p.eng.Healthy()
}
