// Package engine is materializer's state writer: it takes Nakadi batches,
// decides per event what compaction does with it (package compact), writes
// rows to staging files (package files) and commits each processing step as
// one synced Pebble batch (package state) before the batch's cursor may be
// committed to Nakadi.
//
// The order within a step is fixed, and recovery relies on it:
//
//  1. apply the step's events and due timers to in-memory copies of the
//     affected key states, counters, cursors and file records;
//  2. write the step's rows to the staging files and fsync them;
//  3. commit one synced Pebble batch with all of it (and the outbox entries
//     of files sealed in this step);
//  4. only then mark the step's Nakadi batches durable.
//
// A crash between 2 and 3 leaves bytes beyond the committed lengths; start-up
// truncates them and Nakadi redelivers the batches.
package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"materializer/pipeline/compact"
	"materializer/pipeline/files"
	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
	"materializer/state"
)

// EventType is what the engine needs to know of one configured event type.
type EventType struct {
	Name         string
	PartitionKey []flatten.Path
	OrderingKey  flatten.Path // unused for compact.Arrival
	Ordering     compact.Ordering
	EIDPath      flatten.Path
	OccurredPath flatten.Path
	Window       compact.Window
	Mapping      *flatten.Mapping
	// Fingerprint describes what shapes this event type's state (keys,
	// ordering); state written under another fingerprint is refused.
	Fingerprint string
	// Durable is called, on the engine's goroutine, with every batch of this
	// event type once its effects are durable (the consumer's Durable).
	Durable func(*nakadi.Batch)
}

// Options configure the engine.
type Options struct {
	DB               *state.DB
	StagingDir       string
	Compression      string // none | gzip
	CompressionLevel int
	RollMaxBytes     int64
	RollMaxRows      int64 // 0 = no limit
	RollMaxAge       time.Duration
	CSV              flatten.CSV
	// Limits bound what one event may cost (limits.*): every event type's
	// mapping enforces them, when an event arrives and when its rows are
	// written; MaxRejectedRaw caps the raw event kept in a rejected file.
	Limits         flatten.Limits
	MaxRejectedRaw int
	// MaxUncommitted is Nakadi's max_uncommitted_events; it bounds how far
	// back a redelivery can start, hence how many recent batches to keep.
	MaxUncommitted int
	StepEvents     int           // most events per step; default 8192
	Workers        int           // parse/validate goroutines; default GOMAXPROCS
	KeyCacheBytes  int64         // key cache and key filter (an eighth); default 16 MiB; < 0: none
	MaxOpenFiles   int           // staging files holding an OS handle at most; default 256
	LogSegmentSize int64         // when a session log segment is full; default 64 MiB (tests make it small)
	Tick           time.Duration // how often due timers and file ages are checked; default 250 ms
	// MaxStepFailures is how many times in a row a step may fail (other
	// than for a full disk) before Run gives up with the error; default 10
	// (about half a minute of retries). See faults.go.
	MaxStepFailures int
	Now             func() time.Time
	Logger          zerolog.Logger
	Metrics         *Metrics
	// Sealed is called after a step that sealed files committed (wakes the
	// deliverer). It must not block.
	Sealed func()
}

// ErrStopped is returned by requests made after the engine stopped.
var ErrStopped = errors.New("engine: stopped")

// Engine is the state writer. Create it with New and run it with Run.
type Engine struct {
	opts Options
	log  zerolog.Logger
	db   *state.DB
	ctl  chan func()
	// types is written on the Run goroutine only (New, AddEventType), with
	// typesMu held; other goroutines (the dispatcher, Flush) read it with
	// typesMu held, the Run goroutine without.
	typesMu sync.RWMutex
	types   map[string]*eventType

	// Barrier calls go to the dispatcher (barrierIn), which stamps them
	// with queued and passes them to the state writer (barrierOut), which
	// keeps them in barriers until applied reaches their stamp.
	barrierIn, barrierOut chan *barrier
	queued                uint64 // jobs queued; owned by the dispatcher
	applied               uint64 // jobs applied; owned by the Run goroutine
	barriers              []*barrier

	// Owned by the Run goroutine.
	stage      *files.Stage
	sessions   *sessionLog // best events of open sessions
	slots      map[state.Partition]*slot
	slotOrder  []*slot
	nextSlot   state.Slot
	parser     flatten.Parser
	cache      *keyCache               // committed states of recently used keys
	filter     *keyFilter              // every key with state (a Bloom filter)
	rejected   tableInfo               // of rejected files
	encoded    []byte                  // the last step's key-state arena, reused
	lastSealed []state.Outbox          // what the last committed step sealed (Flush returns it)
	more       bool                    // the last step left due timers for the next
	lastNow    int64                   // the last step's time (a clock that goes back resets the timer floors)
	seqs       map[state.FileID]uint64 // next file seq, once read or allocated
	forceSeal  map[state.FileID]bool   // open files to seal in the next step
	rows       []rowBuf                // per-table row buffers of emit
	rejBuf     []byte
	// A failed step's retry (faults.go): recover before the next attempt;
	// undo holds, per slot the failed step touched, its memory from before;
	// kept, the memory to carry over a recovery that has to be retried.
	stopped        error // a step gave up: Run returns it
	mustRecover    bool
	undo           map[state.Partition]slotMemory
	kept           map[state.Partition]slotMemory
	diskFullLogged time.Time

	trace func(format string, args ...any) // tests: narrates decisions
	// timerFault, set by tests, fails the reads of a slot's earliest timer.
	timerFault func() error

	recovered     atomic.Bool
	heartbeat     atomic.Int64                // unix ns of the loop's last turn
	keyCacheBytes atomic.Int64                // the key cache's memory in use, as of the last step
	failing       atomic.Pointer[FailingStep] // set while a step fails and is retried

	rollChecked int64 // unix ns of the last look at every open file (roll)
	// What publishStatus keeps between steps (nil after a recovery or a
	// reload: everything is rebuilt): each event type's last status, and
	// the lengths of the open files by event type.
	statusOf    map[string]EventTypeStatus
	statusNames []string
	openOf      map[string]map[state.FileID]int64

	mu     sync.Mutex // guards status
	status Status
}

type eventType struct {
	EventType
	keyNames []string
	tables   []tableInfo
	counters state.Counters
	slots    []*slot
}

type tableInfo struct {
	name    string
	header  []byte
	columns []state.Column
	mapping string // fingerprint of the columns, recorded in each file
}

// New prepares an engine for the event types.
func New(opts Options, types []EventType) (*Engine, error) {
	if opts.StepEvents <= 0 {
		opts.StepEvents = 8192
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.KeyCacheBytes == 0 {
		opts.KeyCacheBytes = 16 << 20
	}
	if opts.Tick <= 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.LogSegmentSize <= 0 {
		opts.LogSegmentSize = 64 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.MaxUncommitted <= 0 {
		opts.MaxUncommitted = 50000
	}
	if opts.MaxStepFailures <= 0 {
		opts.MaxStepFailures = 10
	}
	e := &Engine{
		opts:       opts,
		log:        opts.Logger.With().Str("component", "engine").Logger(),
		db:         opts.DB,
		types:      map[string]*eventType{},
		ctl:        make(chan func()),
		barrierIn:  make(chan *barrier),
		barrierOut: make(chan *barrier),
		rejected:   rejectedTable(opts.CSV),
	}
	var err error
	// An eighth of the key cache's memory is the key filter: 16 MiB for
	// 13M keys at about 1% false positives with the default budget.
	filterBytes := opts.KeyCacheBytes / 8
	e.filter = newKeyFilter(filterBytes)
	if e.cache, err = newKeyCache(opts.KeyCacheBytes - e.filter.bytes()); err != nil {
		return nil, err
	}
	for _, t := range types {
		if _, dup := e.types[t.Name]; dup {
			return nil, fmt.Errorf("engine: event type %s configured twice", t.Name)
		}
		e.types[t.Name] = newEventType(t, opts.Limits)
	}
	status := e.Status
	opts.Metrics.counters.status.Store(&status)
	return e, nil
}

func newEventType(t EventType, limits flatten.Limits) *eventType {
	t.Mapping = t.Mapping.WithLimits(limits)
	et := &eventType{EventType: t}
	for _, p := range t.PartitionKey {
		et.keyNames = append(et.keyNames, p.String())
	}
	for i, ti := range t.Mapping.Tables() {
		info := tableInfo{name: ti.Name, header: t.Mapping.Header(i)}
		for _, c := range ti.Columns {
			info.columns = append(info.columns, state.Column{Name: c.Name, Type: string(c.Type)})
		}
		info.mapping = columnsFingerprint(info.columns)
		et.tables = append(et.tables, info)
	}
	return et
}

// Run recovers the state, then applies batches from in until ctx ends. It
// returns after its goroutines exit; batches not yet durable are simply not
// marked (Nakadi resends them).
func (e *Engine) Run(ctx context.Context, in <-chan *nakadi.Batch) error {
	if err := e.start(); err != nil {
		return err
	}
	defer func() {
		if e.stage != nil {
			e.stage.Close()
		}
		if e.sessions != nil {
			e.sessions.close()
		}
	}()
	e.recovered.Store(true)
	defer e.recovered.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make(chan *job, 4*e.opts.Workers)
	var wg sync.WaitGroup
	e.startWorkers(ctx, in, order, &wg)
	defer wg.Wait()
	defer cancel()
	return e.loop(ctx, order)
}

// startWorkers starts the dispatcher (in → order + jobs) and the workers.
func (e *Engine) startWorkers(ctx context.Context, in <-chan *nakadi.Batch, order chan<- *job, wg *sync.WaitGroup) {
	jobs := make(chan *job, 4*e.opts.Workers)
	big := make(chan struct{}, 1) // one big event parsed at a time (prepare.go)
	wg.Add(1 + e.opts.Workers)
	queue := func(b *nakadi.Batch) bool {
		if !nakadi.ValidPartition(b.Cursor.Partition) {
			// The consumer refuses such names (ErrInvalidName); a batch
			// from elsewhere never becomes a slot or a file name. Not
			// applied and never durable: Nakadi sends it again.
			e.log.Error().Bool("alert", true).Str("event_type", b.Cursor.EventType).Int("partition_bytes", len(b.Cursor.Partition)).
				Msg("batch with an invalid partition id dropped: it is neither applied nor committed")
			return true
		}
		j := &job{b: b, et: e.eventType(b.Cursor.EventType), done: make(chan struct{}), big: big}
		select {
		case order <- j:
		case <-ctx.Done():
			return false
		}
		e.queued++
		jobs <- j // never blocks for long: workers drain jobs until it closes
		return true
	}
	go func() {
		defer wg.Done()
		defer close(jobs)
		for {
			select {
			case <-ctx.Done():
				return
			case b, ok := <-in:
				if !ok || !queue(b) {
					return
				}
			case br := <-e.barrierIn:
				if !e.takeBarrier(ctx, br, in, queue) {
					return
				}
			}
		}
	}()
	for i := 0; i < e.opts.Workers; i++ {
		go func() {
			defer wg.Done()
			var p flatten.Parser
			for j := range jobs {
				j.prepare(&p)
				close(j.done)
			}
		}()
	}
}

// loop is the state writer: it gathers ready jobs into steps, runs timer
// steps on ticks (at once while due timers are left over), and serves
// requests between steps.
func (e *Engine) loop(ctx context.Context, order <-chan *job) error {
	tick := time.NewTicker(e.opts.Tick)
	defer tick.Stop()
	e.publishStatus(nil)
	now := make(chan time.Time)
	close(now)
	for {
		e.heartbeat.Store(time.Now().UnixNano())
		var jobs []*job
		var again <-chan time.Time
		if e.more {
			again = now
		}
		select {
		case <-ctx.Done():
			return nil
		case fn := <-e.ctl:
			fn()
			if e.stopped != nil { // a step of fn (a flush) gave up
				return e.stopped
			}
			continue
		case b := <-e.barrierOut:
			e.barriers = append(e.barriers, b)
			e.releaseBarriers()
			continue
		case <-tick.C:
		case <-again:
		case j := <-order:
			jobs = e.gather(ctx, j, order)
		}
		if err := e.runStep(ctx, jobs, nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		e.applied += uint64(len(jobs))
		e.releaseBarriers()
	}
}

// gather takes j and whatever further jobs are ready, up to StepEvents.
func (e *Engine) gather(ctx context.Context, j *job, order <-chan *job) []*job {
	jobs := []*job{j}
	n := len(j.b.Events)
	for n < e.opts.StepEvents {
		select {
		case j := <-order:
			jobs = append(jobs, j)
			n += len(j.b.Events)
			continue
		default:
		}
		break
	}
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-ctx.Done():
			return nil
		}
	}
	return jobs
}

// errBroken marks failures that retrying cannot fix (a broken invariant).
var errBroken = errors.New("engine: broken invariant")

// eventType returns the configured event type called name, or nil; safe on
// any goroutine.
func (e *Engine) eventType(name string) *eventType {
	e.typesMu.RLock()
	defer e.typesMu.RUnlock()
	return e.types[name]
}

// Do runs fn on the engine's goroutine between two steps, with everything up
// to the last step durable (checkpoints, flushes and status use it).
func (e *Engine) Do(ctx context.Context, fn func() error) error {
	res := make(chan error, 1)
	select {
	case e.ctl <- func() { res <- fn() }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) now() int64 { return e.opts.Now().UnixNano() }

// Recovered reports whether Run finished recovery and is applying batches.
func (e *Engine) Recovered() bool { return e.recovered.Load() }

// ErrStalled is Healthy's error when the state writer stopped turning.
var ErrStalled = errors.New("engine: loop stalled")

// Healthy returns an error when the engine's loop has not turned for a
// minute (a step hung in I/O, a deadlock, a step that keeps failing); the
// watchdog then stops feeding systemd, which restarts the process. A step
// waiting for disk space counts as turning (faults.go).
func (e *Engine) Healthy() error {
	last := e.heartbeat.Load()
	if last == 0 || !e.recovered.Load() {
		return nil
	}
	if d := time.Since(time.Unix(0, last)); d > time.Minute {
		return fmt.Errorf("%w for %s", ErrStalled, d.Round(time.Second))
	}
	return nil
}
