// Package outbox drives sealed staging files to their final place: upload
// to the blob store, then a notice over NATS JetStream, then removal of the
// outbox entry and the local file. Nothing leaves the outbox before its
// notice is acknowledged, so a crash anywhere repeats at most an upload (the
// same bytes to the same key) or a notice (the same bytes and Msg-Id, which
// JetStream de-duplicates).
package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"materializer/internal/backoff"

	"materializer/internal/failpoint"
	"materializer/pipeline/blobstore"
	"materializer/pipeline/notify"
	"materializer/state"
)

// Announcer publishes one notice on its subject and returns once it is
// acknowledged (notify.Publisher.PublishNotice). nil means notices are off.
type Announcer interface {
	PublishNotice(ctx context.Context, n notify.Notice) error
}

// Options configure the deliverer.
type Options struct {
	DB          *state.DB
	StagingDir  string
	Store       blobstore.Store
	Announcer   Announcer     // nil: no notices; a file is done once stored
	Concurrency int           // uploads in flight; default 4
	MinBackoff  time.Duration // default 1 s
	MaxBackoff  time.Duration // default 1 min
	Now         func() time.Time
	Logger      zerolog.Logger
	Registerer  prometheus.Registerer
}

// Outbox drives sealed files through the outbox: upload, then notice,
// then removal of the entry and the local file (docs/design.md, docs/files-and-notices.md). Uploads
// run concurrently; notices of one file stream (event type, table, kind,
// partition) go out in sequence order, those of different streams in
// parallel, and the entries they deliver leave the outbox together (one
// synced commit for a round of notices, not one per file). Nothing leaves
// the outbox until its notice is acknowledged, so a crash anywhere repeats
// at most an upload (the same bytes to the same key) or a notice (the same
// bytes and Msg-Id, which JetStream de-duplicates).
//
// Every step costs in proportion to what it does, not to the size of the
// outbox: a final flush of a thousand event types leaves tens of thousands
// of files in it at once.
type Outbox struct {
	o   Options
	log zerolog.Logger
	m   *metrics

	wake     chan struct{} // new entries in state
	uploaded chan struct{} // a file was stored: its notice may go out

	// loading orders a read of the outbox in state (load) against the
	// removal of delivered entries: a read from before a removal must not
	// bring the entry back after it.
	loading sync.Mutex

	mu           sync.Mutex
	entries      map[string]*pending         // by object key
	streams      map[state.FileID][]*pending // by sequence number
	ready        map[*pending]bool           // stored heads of their streams: their notice may go out
	queue        []*pending                  // to upload, oldest sealed first
	pendingBytes int64                       // of entries
	delivered    map[string]Delivered
	pruned       time.Time     // when delivered was last pruned
	changed      chan struct{} // closed and replaced on every delivery
	last         Delivered     // the newest delivery (status)
}

type pending struct {
	state.Outbox
	uploading bool
	next      time.Time // earliest next attempt after a failure
	attempts  int
	lastErr   string
}

// Delivered describes a delivered file (the flush answer).
type Delivered struct {
	Key       string    `json:"key"`
	URL       string    `json:"url"`
	EventType string    `json:"event_type"`
	Table     string    `json:"table"`
	Kind      string    `json:"kind"`
	Partition string    `json:"partition"`
	Seq       uint64    `json:"seq"`
	Rows      int64     `json:"rows"`
	Events    int64     `json:"events"`
	Bytes     int64     `json:"bytes"`
	SHA256    string    `json:"sha256"`
	At        time.Time `json:"delivered_at"`
}

// Status is the deliverer's part of /v1/status.
type Status struct {
	PendingFiles int64     `json:"pending_files"`
	PendingBytes int64     `json:"pending_bytes"`
	Uploaded     int64     `json:"uploaded_waiting_for_notice"`
	Failing      int64     `json:"failing"`
	LastError    string    `json:"last_error,omitempty"`
	LastKey      string    `json:"last_delivered_key,omitempty"`
	LastAt       time.Time `json:"last_delivered_at,omitzero"`
}

// noticeConcurrency bounds the notices in flight (each of another file
// stream); JetStream acknowledges them in parallel.
const noticeConcurrency = 64

// New makes a deliverer.
func New(o Options) *Outbox {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Outbox{
		o: o, log: o.Logger.With().Str("component", "outbox").Logger(), m: newMetrics(o.Registerer),
		wake: make(chan struct{}, 1), uploaded: make(chan struct{}, 1),
		entries: map[string]*pending{}, streams: map[state.FileID][]*pending{}, ready: map[*pending]bool{},
		delivered: map[string]Delivered{},
		changed:   make(chan struct{}),
	}
}

// Wake tells the deliverer that the outbox has new entries. It never blocks.
func (d *Outbox) Wake() { signal(d.wake) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. Uploads in flight when ctx ends are
// abandoned (the outbox keeps them).
func (d *Outbox) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { d.announceLoop(ctx) })
	done := make(chan struct{}, d.o.Concurrency)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	inflight, reload := 0, true
	for {
		if reload {
			if err := d.load(); err != nil {
				d.log.Error().Err(err).Msg("reading the outbox failed")
			}
			signal(d.uploaded) // entries stored before a restart
			reload = false
		}
		inflight += d.startUploads(ctx, &wg, done, d.o.Concurrency-inflight)
		d.publishMetrics()
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
			reload = true
		case <-tick.C: // a failed upload's backoff may be over
		case <-done:
			inflight--
		}
	}
}

// load merges the entries in state that are not in memory yet (what is in
// memory is newer). The engine wakes the deliverer after every commit that
// sealed files, so nothing else needs reading.
func (d *Outbox) load() error {
	d.loading.Lock()
	defer d.loading.Unlock()
	all, err := d.o.DB.Outbox()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	added := false
	for _, o := range all {
		if _, ok := d.entries[o.Key]; ok {
			continue
		}
		p := &pending{Outbox: o}
		d.entries[o.Key] = p
		d.pendingBytes += p.Length
		s := d.streams[o.ID]
		i, _ := slices.BinarySearchFunc(s, p.Seq, func(q *pending, seq uint64) int { return cmp.Compare(q.Seq, seq) })
		if i == 0 && len(s) > 0 {
			delete(d.ready, s[0]) // not the head any more (sealed files commit in order; this is defence)
		}
		d.streams[o.ID] = slices.Insert(s, i, p)
		d.noteHead(o.ID)
		if !p.Uploaded {
			d.queue = append(d.queue, p)
			added = true
		}
	}
	if added {
		slices.SortStableFunc(d.queue, func(a, b *pending) int { return cmp.Compare(a.Sealed, b.Sealed) })
	}
	return nil
}

// startUploads starts up to n uploads, oldest sealed first, skipping files
// in flight or backing off.
func (d *Outbox) startUploads(ctx context.Context, wg *sync.WaitGroup, done chan<- struct{}, n int) int {
	now := d.o.Now()
	d.mu.Lock()
	var todo []*pending
	for len(d.queue) > 0 && d.queue[0].Uploaded {
		d.queue = d.queue[1:]
	}
	for _, p := range d.queue {
		if len(todo) == n {
			break
		}
		if !p.Uploaded && !p.uploading && !now.Before(p.next) {
			p.uploading = true
			todo = append(todo, p)
		}
	}
	d.mu.Unlock()
	for _, p := range todo {
		wg.Go(func() {
			d.upload(ctx, p)
			done <- struct{}{}
		})
	}
	return len(todo)
}

// upload stores one sealed file and records that it is stored.
func (d *Outbox) upload(ctx context.Context, p *pending) {
	start := time.Now()
	stored, err := d.put(ctx, p)
	d.mu.Lock()
	defer d.mu.Unlock()
	p.uploading = false
	if err != nil {
		d.failed(p, "upload", err)
		return
	}
	p.Uploaded, p.SHA256, p.Bytes = true, stored.SHA256, stored.Size
	p.attempts, p.lastErr = 0, ""
	d.noteHead(p.ID)
	d.m.uploaded.Inc()
	d.m.uploadBytes.Add(float64(stored.Size))
	d.m.uploadSeconds.Observe(time.Since(start).Seconds())
	// Not synced: if it is lost, the next upload finds the same object.
	b := d.o.DB.NewBatch()
	defer b.Close()
	b.PutOutbox(&p.Outbox)
	if err := b.Commit(false); err != nil {
		d.log.Warn().Err(err).Str("key", p.Key).Msg("recording the upload failed; it will be repeated")
	}
	failpoint.Inject(failpoint.AfterUpload)
	signal(d.uploaded)
}

func (d *Outbox) put(ctx context.Context, p *pending) (blobstore.Stored, error) {
	f, err := os.Open(filepath.Join(d.o.StagingDir, p.Name))
	if err != nil {
		return blobstore.Stored{}, fmt.Errorf("%w: sealed file: %w", blobstore.ErrPermanent, err)
	}
	defer f.Close()
	meta := blobstore.PutMeta{ContentType: "text/csv; charset=utf-8"}
	if p.Compression == "gzip" {
		meta.ContentType = "application/gzip"
	}
	return d.o.Store.Put(ctx, p.Key, f, p.Length, meta)
}

// failed schedules a retry with capped exponential backoff. Permanent
// failures (a conflicting object, denied access) are retried too, slowly:
// an operator must act, and the file must not be lost meanwhile.
func (d *Outbox) failed(p *pending, what string, err error) {
	p.attempts++
	delay := backoff.Delay(p.attempts, d.o.MinBackoff, d.o.MaxBackoff)
	permanent := errors.Is(err, blobstore.ErrPermanent) || errors.Is(err, notify.ErrPermanent)
	if permanent {
		delay = max(delay, 5*time.Minute)
	}
	p.next = d.o.Now().Add(delay)
	p.lastErr = fmt.Sprintf("%s: %v", what, err)
	d.m.failures.WithLabelValues(what, map[bool]string{true: "permanent", false: "retryable"}[permanent]).Inc()
	// One line per file at the first failure (warn), then every tenth
	// (error): an outage of S3 or NATS must not flood the journal.
	var ev *zerolog.Event
	switch {
	case permanent || p.attempts%10 == 0:
		ev = d.log.Error()
	case p.attempts == 1:
		ev = d.log.Warn()
	default:
		return
	}
	ev.Err(err).Str("key", p.Key).Int("attempts", p.attempts).Stringer("retry_in", delay).Bool("permanent", permanent).
		Msgf("%s failed; the file stays in the outbox", what)
}

// announceLoop announces stored files as they come (and retries failed
// notices once their backoff is over) until ctx ends. While a round is on
// its way, more uploads finish: the next round takes them all.
func (d *Outbox) announceLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.uploaded:
		case <-tick.C:
		}
		d.announce(ctx)
	}
}

// announce publishes, in rounds, the notice of every file stream's oldest
// entry that is stored, then removes the acknowledged ones — until no
// stream has one ready.
func (d *Outbox) announce(ctx context.Context) {
	for ctx.Err() == nil {
		heads := d.readyHeads()
		if len(heads) == 0 {
			return
		}
		errs := make([]error, len(heads))
		var g errgroup.Group
		g.SetLimit(noticeConcurrency)
		for i, p := range heads {
			g.Go(func() error {
				errs[i] = d.notice(ctx, p)
				return nil
			})
		}
		_ = g.Wait()
		var acked []*pending
		d.mu.Lock()
		for i, p := range heads {
			if errs[i] != nil {
				d.failed(p, "notice", errs[i])
			} else {
				acked = append(acked, p)
			}
		}
		d.mu.Unlock()
		if len(acked) == 0 {
			return
		}
		if err := d.remove(acked); err != nil {
			d.log.Error().Err(err).Int("files", len(acked)).Msg("removing delivered files from the outbox failed")
			return
		}
	}
}

// noteHead marks the head of stream id ready when it is stored. Called
// with d.mu held.
func (d *Outbox) noteHead(id state.FileID) {
	if s := d.streams[id]; len(s) > 0 && s[0].Uploaded {
		d.ready[s[0]] = true
	}
}

// readyHeads returns the entries whose notice can go out now: stored, the
// lowest sequence number of their stream, not backing off.
func (d *Outbox) readyHeads() []*pending {
	now := d.o.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	var heads []*pending
	for p := range d.ready {
		if !now.Before(p.next) {
			heads = append(heads, p)
		}
	}
	return heads
}

func (d *Outbox) notice(ctx context.Context, p *pending) error {
	d.mu.Lock()
	announcer := d.o.Announcer
	d.mu.Unlock()
	if announcer == nil {
		return nil
	}
	start := time.Now()
	if err := announcer.PublishNotice(ctx, d.noticeOf(p)); err != nil {
		return err
	}
	d.m.noticeSeconds.Observe(time.Since(start).Seconds())
	d.m.notices.Inc()
	failpoint.Inject(failpoint.AfterNotice)
	return nil
}

// noticeOf builds the notice of a stored file (docs/files-and-notices.md); it depends
// only on the outbox entry, so a repeated notice is byte-identical.
func (d *Outbox) noticeOf(p *pending) notify.Notice {
	n := notify.Notice{
		ID: p.Key, URL: d.o.Store.URL(p.Key), EventType: p.ID.EventType, Table: p.ID.Table, Kind: p.ID.Kind,
		Partition: p.ID.Partition, Writer: p.Writer, Seq: p.Seq, Rows: p.Rows, Events: p.Events, Bytes: p.Bytes,
		SHA256: p.SHA256, Compression: p.Compression, Header: p.Header, CreatedAt: time.Unix(0, p.Sealed).UTC(),
	}
	for _, c := range p.Columns {
		n.Columns = append(n.Columns, notify.Column{Name: c.Name, Type: c.Type})
	}
	if p.MinOccurred != 0 {
		n.MinOccurredAt = time.Unix(0, p.MinOccurred).UTC()
		n.MaxOccurredAt = time.Unix(0, p.MaxOccurred).UTC()
	}
	return n
}

// remove drops delivered entries from the outbox in one synced commit, then
// their local files.
func (d *Outbox) remove(ps []*pending) error {
	d.loading.Lock()
	defer d.loading.Unlock()
	b := d.o.DB.NewBatch()
	defer b.Close()
	for _, p := range ps {
		b.DeleteOutbox(p.ID, p.Seq)
	}
	if err := b.Commit(true); err != nil {
		return err
	}
	for _, p := range ps {
		if err := os.Remove(filepath.Join(d.o.StagingDir, p.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn().Err(err).Str("file", p.Name).Msg("removing a delivered staging file failed")
		}
	}
	now := d.o.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range ps {
		d.m.delivered.Inc()
		d.m.fileLatency.Observe(now.Sub(time.Unix(0, p.Sealed)).Seconds())
		delete(d.entries, p.Key)
		delete(d.ready, p)
		d.pendingBytes -= p.Length
		if s := slices.DeleteFunc(d.streams[p.ID], func(q *pending) bool { return q == p }); len(s) > 0 {
			d.streams[p.ID] = s
			d.noteHead(p.ID)
		} else {
			delete(d.streams, p.ID)
		}
		d.last = Delivered{
			Key: p.Key, URL: d.o.Store.URL(p.Key), EventType: p.ID.EventType, Table: p.ID.Table, Kind: p.ID.Kind,
			Partition: p.ID.Partition, Seq: p.Seq, Rows: p.Rows, Events: p.Events, Bytes: p.Bytes, SHA256: p.SHA256, At: now,
		}
		d.delivered[p.Key] = d.last
	}
	d.pruneDelivered(now)
	close(d.changed)
	d.changed = make(chan struct{})
	return nil
}

// pruneDelivered forgets, once a minute, deliveries older than an hour
// (Wait only needs recent ones).
func (d *Outbox) pruneDelivered(now time.Time) {
	if now.Sub(d.pruned) < time.Minute {
		return
	}
	d.pruned = now
	for k, v := range d.delivered {
		if now.Sub(v.At) > time.Hour {
			delete(d.delivered, k)
		}
	}
}

// SetAnnouncer switches where notices go (a config reload of the notice
// subject): notices not yet acknowledged go to the new one.
func (d *Outbox) SetAnnouncer(a Announcer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.o.Announcer = a
}

// Wait blocks until every file of keys, and every file of the event type
// (all when "") that is in the outbox now, is delivered. It returns the
// deliveries of keys.
func (d *Outbox) Wait(ctx context.Context, eventType string, keys []string) ([]Delivered, error) {
	d.mu.Lock()
	waitFor := append([]string{}, keys...)
	for k, p := range d.entries {
		if eventType == "" || p.ID.EventType == eventType {
			waitFor = append(waitFor, k)
		}
	}
	d.mu.Unlock()
	d.Wake()
	for {
		d.mu.Lock()
		missing := 0
		for _, k := range waitFor {
			if _, ok := d.delivered[k]; !ok {
				missing++
			}
		}
		changed := d.changed
		d.mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pipeline: %d files not delivered yet: %w", missing, ctx.Err())
		case <-changed:
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Delivered, 0, len(keys))
	for _, k := range keys {
		out = append(out, d.delivered[k])
	}
	return out, nil
}

// StagedBytes is the size of the sealed files waiting for delivery.
func (d *Outbox) StagedBytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pendingBytes
}

// Status returns the deliverer's status. It is computed from the entries
// under the lock, so it agrees with what Wait has seen delivered.
func (d *Outbox) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statusLocked()
}

func (d *Outbox) statusLocked() Status {
	s := Status{LastKey: d.last.Key, LastAt: d.last.At, PendingFiles: int64(len(d.entries)), PendingBytes: d.pendingBytes}
	for _, p := range d.entries {
		if p.Uploaded {
			s.Uploaded++
		}
		if p.lastErr != "" {
			s.Failing++
			s.LastError = p.lastErr
		}
	}
	return s
}

// publishMetrics sets the outbox gauges.
func (d *Outbox) publishMetrics() {
	d.mu.Lock()
	files, bytes := len(d.entries), d.pendingBytes
	d.mu.Unlock()
	d.m.pendingFiles.Set(float64(files))
	d.m.pendingBytes.Set(float64(bytes))
}

type metrics struct {
	uploaded, notices, delivered prometheus.Counter
	uploadBytes                  prometheus.Counter
	uploadSeconds, noticeSeconds prometheus.Histogram
	fileLatency                  prometheus.Histogram
	failures                     *prometheus.CounterVec
	pendingFiles, pendingBytes   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := prometheus.ExponentialBuckets(0.005, 2, 16)
	m := &metrics{
		uploaded:      prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_delivery_uploads_total", Help: "Files stored in the target."}),
		notices:       prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_delivery_notices_total", Help: "Delivery notices acknowledged by JetStream."}),
		delivered:     prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_delivery_files_total", Help: "Files delivered and announced, removed from the outbox."}),
		uploadBytes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "materializer_delivery_upload_bytes_total", Help: "Bytes of files stored."}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "materializer_delivery_upload_duration_seconds", Help: "Time to store one file.", Buckets: buckets}),
		noticeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "materializer_delivery_notice_duration_seconds", Help: "Time to publish one notice (until acknowledged).", Buckets: buckets}),
		fileLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "materializer_delivery_file_to_notice_seconds", Help: "From sealing a file to its acknowledged notice.", Buckets: buckets,
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "materializer_delivery_failures_total", Help: "Failed uploads and notices, by step and kind.",
		}, []string{"step", "kind"}),
		pendingFiles: prometheus.NewGauge(prometheus.GaugeOpts{Name: "materializer_delivery_pending_files", Help: "Sealed files in the outbox."}),
		pendingBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "materializer_delivery_pending_bytes", Help: "Bytes of sealed files in the outbox."}),
	}
	if reg != nil {
		reg.MustRegister(m.uploaded, m.notices, m.delivered, m.uploadBytes, m.uploadSeconds, m.noticeSeconds,
			m.fileLatency, m.failures, m.pendingFiles, m.pendingBytes)
	}
	return m
}
