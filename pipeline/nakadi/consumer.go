package nakadi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"materializer/internal/backoff"
)

// Consumer consumes one Nakadi subscription. Create it with New, run it
// with Run (once), and call Durable for every batch Run handed out.
type Consumer struct {
	cfg   Config
	log   zerolog.Logger
	api   *api
	m     *metrics
	tr    *tracker
	now   func() time.Time
	label string // event types joined with ","

	kick      chan struct{} // wakes the dispatcher: lost notice or pause
	commitNow chan struct{} // starts a commit before the interval
	statsNow  chan struct{} // polls /stats now: a partition may have moved
	handing   sync.Mutex    // held by the dispatcher while it hands a batch out

	mu         sync.Mutex
	running    bool
	subID      string
	cur        *streamState // open stream, nil between streams
	streams    map[string]*streamState
	paused     bool
	resumed    chan struct{} // closed by Resume
	fatal      bool
	lastErr    string
	lastErrAt  time.Time
	opened     int64 // streams opened
	parts      map[PartitionKey]*partStat
	owner      map[PartitionKey]string // stream that last handed out a batch of the partition
	lostQ      []*Batch
	firstSeq   uint64
	logLimit   map[string]*limitedLog
	windowWarn bool
	moves      moves // how often /stats is polled
}

// streamState is one stream, kept a while after it ended so that late
// commits and lost partitions of it can be resolved.
type streamState struct {
	id       string
	ctx      context.Context // ends with the stream (pause, idle, Run's ctx)
	cancel   context.CancelFunc
	opened   time.Time
	ended    time.Time
	dropRest bool // paused: batches of this stream not yet handed out are dropped
	// epoch[k] grows each time k is lost on this stream; batches read in an
	// older epoch are not handed out. lost[k] is cleared when k comes back.
	epoch map[PartitionKey]int
	lost  map[PartitionKey]bool
	// first[k] orders the first line of k on this stream against /stats
	// requests (a stale /stats answer must not take a fresh partition away).
	first map[PartitionKey]uint64
	// lastLine[k] is when the last line of k arrived, lastAny the last line
	// of any partition; silent[k] is set once k's silence was reported
	// (moves.go).
	lastLine map[PartitionKey]time.Time
	lastAny  time.Time
	silent   map[PartitionKey]bool
	idle     *idleReader // the stream's reader, once reading
}

// New checks the config and returns a consumer.
func New(cfg Config) (*Consumer, error) {
	cfg, err := cfg.checked()
	if err != nil {
		return nil, err
	}
	label := strings.Join(cfg.EventTypes, ",")
	c := &Consumer{
		cfg:       cfg,
		log:       cfg.Logger.With().Str("component", "nakadi").Str("event_types", label).Logger(),
		m:         newMetrics(cfg.Registerer),
		tr:        newTracker(),
		now:       cfg.Now,
		label:     label,
		api:       newAPI(cfg),
		kick:      make(chan struct{}, 1),
		commitNow: make(chan struct{}, 1),
		statsNow:  make(chan struct{}, 1),
		streams:   make(map[string]*streamState),
		resumed:   make(chan struct{}),
		parts:     make(map[PartitionKey]*partStat),
		owner:     make(map[PartitionKey]string),
		logLimit:  make(map[string]*limitedLog),
	}
	c.m.streaming.WithLabelValues(label).Set(0)
	c.m.fatal.WithLabelValues(label).Set(0)
	return c, nil
}

// Run creates or gets the subscription, initializes its cursors, and
// streams until ctx ends, reconnecting after every end of stream or error
// (with backoff). Batches go to out (which Run never closes); out may be
// buffered. On 403 or 404 Run logs loudly, sets readiness false and the
// fatal metric, and returns the error (errors.Is ErrForbidden or
// ErrSubscriptionNotFound) unless Config.RetryFatal is set.
//
// When ctx ends Run stops reading, keeps committing what becomes durable for
// Config.DrainTimeout (or until every handed-out batch is committed), and
// returns nil after all its goroutines exited.
func (c *Consumer) Run(ctx context.Context, out chan<- *Batch) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("nakadi: Run called twice")
	}
	c.running = true
	c.mu.Unlock()
	in := make(chan *Batch)
	runCtx, stop := context.WithCancel(ctx)
	drain := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.dispatch(runCtx, in, out) })
	wg.Go(func() { c.commitLoop(runCtx, drain) })
	err := c.loop(runCtx, in)
	stop()
	close(drain)
	wg.Wait()
	for _, tr := range []http.RoundTripper{c.cfg.Transport, c.cfg.StreamTransport} {
		if t, ok := tr.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	}
	return err
}

// loop sets the subscription up and streams; it returns nil when ctx ends
// and the error of a fatal answer (unless RetryFatal).
func (c *Consumer) loop(ctx context.Context, in chan<- *Batch) error {
	bo := &backoff.Backoff{Min: c.cfg.BackoffMin, Max: c.cfg.BackoffMax}
	for ctx.Err() == nil {
		err := c.setup(ctx)
		if err == nil {
			bo.Reset()
			err = c.streamLoop(ctx, in, bo)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case Fatal(err):
			c.failLoudly(err)
			if !c.cfg.RetryFatal {
				return err
			}
			backoff.Sleep(ctx, c.cfg.BackoffMax)
		default:
			c.noteErr(err)
			backoff.Sleep(ctx, bo.Next(retryAfter(err)))
		}
	}
	return nil
}

// setup creates or gets the subscription and initializes its cursors so
// that read_from applies now, not at the first stream (docs/nakadi.md §3.2).
func (c *Consumer) setup(ctx context.Context) error {
	sub, created, err := c.api.createSubscription(ctx, c.cfg.subscription())
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.subID = sub.ID
	c.mu.Unlock()
	c.log.Info().Str("subscription_id", sub.ID).Bool("created", created).Str("read_from", sub.ReadFrom).Msg("subscription ready")
	if err := c.api.initCursors(ctx, sub.ID); err != nil {
		if !errors.Is(err, ErrForbidden) {
			return err
		}
		c.log.Warn().Err(err).Msg("cannot initialize cursors (needs admin rights on the subscription); read_from applies at the first stream")
	}
	return nil
}

// streamLoop opens and reads streams until ctx ends or a fatal error.
func (c *Consumer) streamLoop(ctx context.Context, in chan<- *Batch, bo *backoff.Backoff) error {
	for {
		if !c.waitResumed(ctx) {
			return nil
		}
		st, resp, err := c.openStream(ctx)
		if err == nil {
			var healthy bool
			healthy, err = c.readStream(ctx, st, resp, in)
			c.endStream(st, err)
			if healthy {
				bo.Reset()
			}
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			continue // paused
		case Fatal(err):
			return err
		}
		c.noteErr(err)
		if !backoff.Sleep(ctx, bo.Next(retryAfter(err))) {
			return nil
		}
	}
}

// Durable tells the consumer that the batch's state is durable (also for a
// batch the pipeline skipped as redelivered). The consumer then commits, per
// partition, the newest cursor whose batch and every earlier batch of that
// partition on that stream are durable. Calls may come from any goroutine
// and out of order across partitions. Lost batches are ignored.
func (c *Consumer) Durable(b *Batch) {
	if b == nil || b.entry == nil {
		return
	}
	if c.tr.durable(b.entry) && c.tr.uncommittedEvents() >= c.cfg.MaxUncommittedEvents/2 {
		signal(c.commitNow)
	}
}

// Pause stops handing out batches and closes the stream's connection; it
// does not reconnect until Resume. When Pause returns, no batch is handed
// out any more (lost notices still are). Batches already handed out are
// processed normally: mark them durable and they are committed with their
// stream id (inside Nakadi's closing window; later, Nakadi re-sends them).
// Batches read but not yet handed out are dropped and will be re-sent.
func (c *Consumer) Pause() {
	c.mu.Lock()
	c.paused = true
	st := c.cur
	if st != nil {
		st.dropRest = true
	}
	c.mu.Unlock()
	if st != nil {
		st.cancel()
	}
	signal(c.kick)
	// A hand-out under way ends (the kick wakes it); later ones see paused.
	c.handing.Lock()
	c.log.Info().Msg("paused")
	c.handing.Unlock()
}

// Resume undoes Pause: the consumer reconnects.
func (c *Consumer) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused {
		return
	}
	c.paused = false
	close(c.resumed)
	c.resumed = make(chan struct{})
	c.log.Info().Msg("resumed")
}

// waitResumed blocks while paused; false when ctx ended.
func (c *Consumer) waitResumed(ctx context.Context) bool {
	for {
		c.mu.Lock()
		paused, ch := c.paused, c.resumed
		c.mu.Unlock()
		if !paused {
			return ctx.Err() == nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// Streaming reports whether a stream is open.
func (c *Consumer) Streaming() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

// Ready reports whether a stream is open and no fatal error happened.
func (c *Consumer) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil && !c.fatal
}

// SubscriptionID returns the subscription's id once known.
func (c *Consumer) SubscriptionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subID
}

// failLoudly records a 403/404.
func (c *Consumer) failLoudly(err error) {
	c.mu.Lock()
	c.fatal = true
	c.lastErr, c.lastErrAt = err.Error(), c.now()
	c.mu.Unlock()
	c.m.fatal.WithLabelValues(c.label).Set(1)
	c.m.errors.WithLabelValues(c.label, errKind(err)).Inc()
	c.log.Error().Err(err).Bool("alert", true).Bool("retrying", c.cfg.RetryFatal).Msg("nakadi refuses this consumer; operator action needed")
}

// noteErr records a transient (or repeating) error, logging it rate-limited.
func (c *Consumer) noteErr(err error) {
	kind := errKind(err)
	c.m.errors.WithLabelValues(c.label, kind).Inc()
	c.mu.Lock()
	if kind != "stream_ended" {
		c.lastErr, c.lastErrAt = err.Error(), c.now()
	}
	ll := c.logLimit[kind]
	if ll == nil {
		ll = &limitedLog{}
		c.logLimit[kind] = ll
	}
	suppressed, ok := ll.allow(c.now())
	c.mu.Unlock()
	if !ok {
		return
	}
	ev := c.log.Warn()
	switch kind {
	case "stream_ended", "conflict":
		ev = c.log.Info()
	case "bad_request", "unprocessable", "unauthorized":
		ev = c.log.Error()
	case "invalid_name":
		ev = c.log.Error().Bool("alert", true)
	}
	ev.Err(err).Str("kind", kind).Int("suppressed", suppressed).Msg("nakadi: will retry")
}

// limitedLog lets one message per kind through every logEvery.
type limitedLog struct {
	last       time.Time
	suppressed int
}

const logEvery = 30 * time.Second

func (l *limitedLog) allow(now time.Time) (int, bool) {
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
}

// errKind names an error for the errors_total metric.
func errKind(err error) string {
	kinds := []struct {
		target error
		kind   string
	}{
		{ErrConflict, "conflict"}, {ErrUnauthorized, "unauthorized"}, {ErrForbidden, "forbidden"},
		{ErrNotFound, "not_found"}, {ErrTooManyRequests, "too_many_requests"}, {ErrServer, "server"},
		{ErrUnprocessable, "unprocessable"}, {ErrBadRequest, "bad_request"}, {ErrIdleTimeout, "idle_timeout"},
		{ErrStreamEnded, "stream_ended"}, {ErrMalformedBatch, "malformed"}, {ErrLineTooLong, "line_too_long"},
		{ErrInvalidName, "invalid_name"},
	}
	for _, k := range kinds {
		if errors.Is(err, k.target) {
			return k.kind
		}
	}
	return "network"
}

// signal wakes a goroutine waiting on a 1-buffered channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Settle is for a consumer that was paused and whose handed-out batches
// were all applied by the pipeline (a handover): it commits every durable
// cursor now and waits until they are committed, then forgets the batches
// that were handed out but will never be marked durable (held back by the
// pipeline as redelivered): Nakadi re-sends those to whoever owns the
// partition next. It returns how many events it forgot. With ctx ending
// first, it returns ctx's error and forgets nothing.
func (c *Consumer) Settle(ctx context.Context) (int, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for c.tr.committing() {
		signal(c.commitNow)
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("nakadi: %d events durable but not committed: %w", c.tr.uncommittedEvents(), ctx.Err())
		case <-tick.C:
		}
	}
	n := c.tr.forgetUndurable()
	if n > 0 {
		c.log.Info().Int("events", n).Msg("handed-out events never marked durable are left to Nakadi to re-send")
	}
	return n, nil
}
