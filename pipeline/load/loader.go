package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"materializer/conf"
	"materializer/internal/backoff"
	"materializer/internal/failpoint"
	"materializer/pipeline/blobstore"
	"materializer/pipeline/notify"
)

// Options configure a Loader.
type Options struct {
	Config     *conf.Config // validated for conf.ForLoad
	DSN        string       // PostgreSQL connection string (the content of load.dsn_file)
	Store      blobstore.Store
	Logger     zerolog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Now        func() time.Time
	// AckWait is how long JetStream waits for an ack before it delivers a
	// notice again (default 30s); the loader reports progress on long
	// batches, so it only matters after a crash.
	AckWait time.Duration
	// RetryMin and RetryMax bound the backoff between attempts of a bad
	// file (defaults 1s and 1m); OutageMin and OutageMax that of an outage
	// of PostgreSQL, storage or NATS (defaults 250ms and 30s).
	RetryMin, RetryMax   time.Duration
	OutageMin, OutageMax time.Duration
	// TempDir holds downloads while they are checked and copied (default
	// the system's).
	TempDir string
	// Fetches is how many files of a batch download at once (default 4).
	Fetches int
}

func (o Options) withDefaults() Options {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&o.AckWait, 30*time.Second)
	set(&o.RetryMin, time.Second)
	set(&o.RetryMax, time.Minute)
	set(&o.OutageMin, 250*time.Millisecond)
	set(&o.OutageMax, 30*time.Second)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Fetches == 0 {
		o.Fetches = 4
	}
	return o
}

// Loader is `materializer load` as one component: Run consumes notices
// until its context ends.
type Loader struct {
	opts    Options
	cfg     *conf.Config
	schema  *Schema
	csv     csvDialect
	log     zerolog.Logger
	metrics *metrics

	pool      atomic.Pointer[pgxpool.Pool]
	ready     atomic.Bool
	heartbeat atomic.Int64 // unix nanos of the loop's last turn

	mu       sync.Mutex
	st       Status
	attempts map[string]int // failed attempts per notice id, until loaded or parked
}

// New compiles the schema; nothing connects until Run.
func New(o Options) (*Loader, error) {
	o = o.withDefaults()
	s, err := NewSchema(o.Config)
	if err != nil {
		return nil, err
	}
	l := &Loader{opts: o, cfg: o.Config, schema: s, log: o.Logger.With().Str("component", "load").Logger(),
		metrics: newMetrics(o.Registerer), attempts: map[string]int{}}
	c := o.Config.CSV.Flatten()
	l.csv = csvDialect{Delimiter: c.Delimiter, Null: c.Null}
	l.st = Status{Schema: s.Name, Durable: o.Config.Load.Durable, Stream: o.Config.Notify.Stream,
		Retrying: []Retry{}, Parked: []Parked{}}
	return l, nil
}

// Ready reports whether the loader is consuming: tables set up, consumer
// created, no outage.
func (l *Loader) Ready() bool { return l.ready.Load() }

func (l *Loader) beat() { l.heartbeat.Store(l.opts.Now().UnixNano()) }

// Healthy reports whether the loop made progress lately (a turn of the
// loop, or bytes of a file read into PostgreSQL).
func (l *Loader) Healthy() error {
	last := time.Unix(0, l.heartbeat.Load())
	if age := l.opts.Now().Sub(last); l.heartbeat.Load() != 0 && age > 5*time.Minute {
		return fmt.Errorf("load: no progress for %s", age.Round(time.Second))
	}
	return nil
}

// SetDSN makes later transactions use a new connection string (SIGHUP
// re-reads load.dsn_file); the old connections close once idle.
func (l *Loader) SetDSN(ctx context.Context, dsn string) error {
	if dsn == l.opts.DSN {
		return nil
	}
	pool, err := l.newPool(ctx, dsn)
	if err != nil {
		return err
	}
	l.opts.DSN = dsn
	if old := l.pool.Swap(pool); old != nil {
		go old.Close()
	}
	return nil
}

func (l *Loader) newPool(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("load: the PostgreSQL connection string does not parse: %w", err)
	}
	pc.MaxConns = 3
	pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
	pc.ConnConfig.RuntimeParams["application_name"] = "materializer-load"
	temps := l.schema.TempTables()
	pc.AfterConnect = func(ctx context.Context, c *pgxConn) error {
		for _, stmt := range temps {
			if _, err := c.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("load: temporary tables: %w", err)
			}
		}
		return nil
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

// Run sets up the tables and the consumer, then loads batches until ctx
// ends. It returns nil on a stop, ErrTablesDiffer when a table does not
// match, and other errors only for what no retry can fix.
func (l *Loader) Run(ctx context.Context) error {
	pool, err := l.newPool(ctx, l.opts.DSN)
	if err != nil {
		return err
	}
	l.pool.Store(pool)
	defer func() { l.pool.Load().Close() }()
	nc, err := l.connectNATS()
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := l.setup(ctx); err != nil {
		return stopped(ctx, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, stream, err := l.consumer(ctx, js)
	if err != nil {
		return stopped(ctx, err)
	}
	l.ready.Store(true)
	l.log.Info().Str("durable", l.cfg.Load.Durable).Str("stream", l.cfg.Notify.Stream).Str("schema", l.schema.Name).Msg("loading")
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { l.watchPending(gctx, cons, stream); return nil })
	g.Go(func() error { return l.loop(gctx, cons) })
	err = g.Wait()
	_ = nc.Flush() // the last acks
	return stopped(ctx, err)
}

// stopped turns the end of ctx into a clean stop.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err())) {
		return nil
	}
	return err
}

// setup creates and checks the tables, retrying while PostgreSQL is
// unreachable; tables that differ are final.
func (l *Loader) setup(ctx context.Context) error {
	b := backoff.Backoff{Min: l.opts.OutageMin, Max: l.opts.OutageMax}
	for {
		err := l.trySetup(ctx)
		if err == nil || errors.Is(err, ErrTablesDiffer) || ctx.Err() != nil {
			return err
		}
		l.outage(fmt.Errorf("load: PostgreSQL: %w", err))
		if !backoff.Sleep(ctx, b.Next(0)) {
			return ctx.Err()
		}
	}
}

func (l *Loader) trySetup(ctx context.Context) error {
	c, err := l.pool.Load().Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	created, err := l.schema.Setup(ctx, c.Conn())
	if err != nil {
		return err
	}
	if len(created) > 0 {
		l.log.Info().Str("schema", l.schema.Name).Strs("tables", created).Msg("created tables")
	}
	return l.refreshParked(ctx)
}

// loop fetches up to load.batch_files notices at a time and loads them.
func (l *Loader) loop(ctx context.Context, cons jetstream.Consumer) error {
	out := backoff.Backoff{Min: l.opts.OutageMin, Max: l.opts.OutageMax}
	fetchFailed := false
	for ctx.Err() == nil {
		l.beat()
		batch, err := cons.Fetch(l.cfg.Load.BatchFiles, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			fetchFailed = true
			l.outage(fmt.Errorf("load: fetch notices: %w", err))
			backoff.Sleep(ctx, out.Next(0))
			continue
		}
		if fetchFailed { // NATS is back; PostgreSQL shows with the next batch
			fetchFailed = false
			l.ready.Store(true)
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		if l.process(ctx, msgs) {
			out.Reset()
			l.ready.Store(true)
			continue
		}
		if ctx.Err() != nil { // stopping: the next loader gets them at once
			for _, m := range msgs {
				_ = m.Nak()
			}
			break
		}
		d := out.Next(0)
		for _, m := range msgs { // an outage: deliver them again after the pause
			_ = m.NakWithDelay(d)
		}
		backoff.Sleep(ctx, d)
	}
	return nil
}

// item is one notice of a batch on its way.
type item struct {
	msg    jetstream.Msg
	notice notify.Notice
	file   *fetched
}

// process loads one batch of notices; false means an outage (nothing was
// acked, the caller backs off).
func (l *Loader) process(ctx context.Context, msgs []jetstream.Msg) bool {
	items := l.parse(ctx, msgs)
	defer func() {
		for _, it := range items {
			if it.file != nil {
				it.file.Close()
			}
		}
	}()
	keep := l.keepAlive(msgs)
	defer keep()
	if !l.download(ctx, items) {
		return false
	}
	items = l.withFiles(items)
	if len(items) == 0 {
		return true
	}
	failpoint.Inject(failpoint.LoadAfterDownload)
	return l.load(ctx, items)
}

// parse decodes the notices; one that does not decode is parked at once
// (no retry can fix it).
func (l *Loader) parse(ctx context.Context, msgs []jetstream.Msg) []*item {
	var items []*item
	for _, m := range msgs {
		n, err := notify.ParseNotice(m.Data())
		if err == nil && n.ID == "" {
			err = errors.New("the notice has no id")
		}
		if err != nil {
			id := m.Headers().Get("Nats-Msg-Id")
			if md, merr := m.Metadata(); id == "" && merr == nil {
				id = fmt.Sprintf("stream-seq-%d", md.Sequence.Stream)
			}
			l.park(ctx, m, notify.Notice{ID: id}, badFile("notice %s: %v", id, err), l.cfg.Load.MaxAttempts)
			continue
		}
		items = append(items, &item{msg: m, notice: n})
	}
	return items
}

// keepAlive tells JetStream every AckWait/3 that the batch's notices are
// being worked on; the returned func stops it.
func (l *Loader) keepAlive(msgs []jetstream.Msg) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(l.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

// download fetches and checks the batch's files, Fetches at a time. A bad
// file is handled (retried later or parked) and dropped from the batch;
// false means an outage.
func (l *Loader) download(ctx context.Context, items []*item) bool {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.opts.Fetches)
	errs := make([]error, len(items))
	for i, it := range items {
		g.Go(func() error {
			it.file, errs[i] = fetch(gctx, l.opts.Store, it.notice, l.opts.TempDir)
			if it.file != nil {
				it.file.beat = l.beat
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrBadFile):
			l.bad(ctx, items[i], err)
		case ctx.Err() != nil:
			return false
		default:
			l.outage(err)
			return false
		}
	}
	return true
}

func (l *Loader) withFiles(items []*item) []*item {
	var out []*item
	for _, it := range items {
		if it.file != nil {
			out = append(out, it)
		}
	}
	return out
}

// load applies the batch in one transaction; when a file in it is bad,
// each file is applied alone, so only the bad one waits.
func (l *Loader) load(ctx context.Context, items []*item) bool {
	err := l.applyItems(ctx, items)
	switch {
	case err == nil:
		return true
	case ctx.Err() != nil:
		return false
	case !errors.Is(err, ErrBadFile) && !isDataError(err):
		l.outage(err)
		return false
	case len(items) == 1:
		l.bad(ctx, items[0], err)
		return true
	}
	for _, it := range items {
		if !l.load(ctx, []*item{it}) {
			return false
		}
	}
	return true
}

// applyItems runs one transaction, then acks its notices.
func (l *Loader) applyItems(ctx context.Context, items []*item) error {
	files := make([]*fetched, len(items))
	for i, it := range items {
		files[i] = it.file
	}
	c, err := l.pool.Load().Acquire(ctx)
	if err != nil {
		return err
	}
	start := l.opts.Now()
	res, err := l.schema.apply(ctx, c.Conn(), l.csv, files)
	c.Release()
	if err != nil {
		return err
	}
	failpoint.Inject(failpoint.LoadAfterCommit)
	for _, it := range items {
		_ = it.msg.Ack()
	}
	l.loaded(items, res, l.opts.Now().Sub(start))
	return nil
}

// bad counts a failed attempt of a file: retried with backoff (the notice
// is not acked), or parked after load.max_attempts.
func (l *Loader) bad(ctx context.Context, it *item, err error) {
	l.mu.Lock()
	l.attempts[it.notice.ID]++
	n := l.attempts[it.notice.ID]
	l.mu.Unlock()
	l.metrics.badAttempts.Inc()
	l.report(it.notice.ID, err)
	if n >= l.cfg.Load.MaxAttempts {
		l.park(ctx, it.msg, it.notice, err, n)
		return
	}
	d := backoff.Delay(n, l.opts.RetryMin, l.opts.RetryMax)
	l.log.Warn().Err(err).Str("id", it.notice.ID).Int("attempt", n).Int("max_attempts", l.cfg.Load.MaxAttempts).
		Stringer("retry_in", d).Msg("cannot load a file; retrying")
	_ = it.msg.NakWithDelay(d)
}

// park records a notice in materializer_failed_files and acks it, so that
// loading goes on; if PostgreSQL cannot record it, the notice comes again.
func (l *Loader) park(ctx context.Context, m jetstream.Msg, n notify.Notice, reason error, attempts int) {
	body := m.Data()
	if !json.Valid(body) {
		body, _ = json.Marshal(string(body))
	}
	err := l.schema.parkNotice(ctx, l.pool.Load(), n.ID, body, reason.Error(), attempts)
	if err != nil {
		l.outage(fmt.Errorf("load: park %s: %w", n.ID, err))
		_ = m.NakWithDelay(l.opts.OutageMax)
		return
	}
	_ = m.Ack()
	l.mu.Lock()
	delete(l.attempts, n.ID)
	l.mu.Unlock()
	l.metrics.files.WithLabelValues("parked").Inc()
	l.log.Error().Str("id", n.ID).Int("attempts", attempts).Str("reason", reason.Error()).
		Msg("parked a notice in " + l.schema.Name + "." + failedFiles + "; loading goes on (docs/loader.md: replay)")
	l.forget(n.ID)
	_ = l.refreshParked(ctx)
}
