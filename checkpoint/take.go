package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"materializer/internal/datadir"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/state"
)

// Quiesce runs fn on the state writer's goroutine between two steps, with
// everything up to the last step durable (pipeline.Engine.Do). Writes of
// the deliverer may go on meanwhile; the checkpoint copes with them.
type Quiesce func(ctx context.Context, fn func() error) error

// Now is a Quiesce for a stopped writer: fn runs at once.
func Now(_ context.Context, fn func() error) error { return fn() }

// Options configure a Taker.
type Options struct {
	Dir        string    // local checkpoints: DATA_DIR/checkpoints
	StagingDir string    // the engine's staging directory
	DB         *state.DB // the live state
	// EventTypes are the configured event types (Name and Tables); the
	// manifest adds their stored fingerprints and counters.
	EventTypes []EventType
	Keep       int     // local checkpoints kept (and remote ones); default 1
	Remote     *Remote // nil: local only

	Now        func() time.Time
	Logger     zerolog.Logger
	Registerer prometheus.Registerer
}

// Taker takes checkpoints of one data dir; Take calls are serialized.
type Taker struct {
	o   Options
	log zerolog.Logger
	m   *metrics
	mu  sync.Mutex
}

// NewTaker returns a Taker.
func NewTaker(o Options) *Taker {
	if o.Keep < 1 {
		o.Keep = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Taker{o: o, log: o.Logger.With().Str("component", "checkpoint").Logger(), m: newMetrics(o.Registerer)}
}

// SetEventTypes replaces the configured event types (a reload added one).
func (t *Taker) SetEventTypes(types []EventType) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.o.EventTypes = append([]EventType(nil), types...)
}

// Result describes a checkpoint just taken.
type Result struct {
	Info
	Pause time.Duration `json:"pause_ns"`
	Took  time.Duration `json:"took_ns"`
	// Hashed is how many bytes were read to checksum the files (SSTs kept
	// from the previous checkpoint are not read again).
	Hashed int64        `json:"hashed_bytes"`
	Upload *UploadStats `json:"upload,omitempty"`
	// RemoteError is set when the local checkpoint is complete but its
	// remote copy failed (the next checkpoint tries again).
	RemoteError string `json:"remote_error,omitempty"`

	manifest *Manifest // what the checkpoint's manifest holds (for the upload)
}

// snapshot is what the pause produced.
type snapshot struct {
	id, dir string
	created time.Time
	pause   time.Duration
	hashed  int64
}

// Take takes a checkpoint: a memtable flush (so the copied WAL is small),
// then, paused between two steps of the writer, hard links of the staging
// files and a Pebble checkpoint; then, with ingestion running again, the
// open files are cut to their committed lengths, everything is hashed and
// the manifest written last. Older local checkpoints beyond Keep are
// removed; with a Remote, the checkpoint is copied there incrementally.
func (t *Taker) Take(ctx context.Context, quiesce Quiesce) (*Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	start := time.Now()
	res, err := t.take(ctx, quiesce)
	if err != nil {
		t.m.failures.Inc()
		return nil, err
	}
	t.m.pause.Observe(res.Pause.Seconds())
	t.m.last.Set(float64(res.Created.Unix()))
	t.m.bytes.Set(float64(res.Size))
	if err := t.pruneLocal(); err != nil {
		t.log.Warn().Err(err).Msg("removing old local checkpoints failed")
	}
	if t.o.Remote != nil {
		t.upload(ctx, res)
	}
	res.Took = time.Since(start)
	t.m.duration.Observe(res.Took.Seconds())
	t.log.Info().Str("id", res.ID).Stringer("pause", res.Pause).Stringer("took", res.Took).Int64("bytes", res.Size).
		Int("files", res.Files).Str("remote_error", res.RemoteError).Msg("checkpoint taken")
	return res, nil
}

func (t *Taker) take(ctx context.Context, quiesce Quiesce) (*Result, error) {
	if err := os.MkdirAll(t.o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	t.removeUnfinished()
	for attempt := 1; ; attempt++ {
		res, err := t.attempt(ctx, quiesce)
		if !errors.Is(err, errVanished) || attempt == 3 {
			return res, err
		}
		t.log.Info().Err(err).Msg("a staging file went away while the checkpoint was taken; taking it again")
	}
}

// errVanished: an open staging file the checkpoint's state names was
// sealed, delivered and removed before it could be linked (files created
// after the pause only): the checkpoint is taken again.
var errVanished = errors.New("checkpoint: open staging file vanished")

func (t *Taker) attempt(ctx context.Context, quiesce Quiesce) (*Result, error) {
	if err := t.o.DB.Flush(); err != nil {
		return nil, err
	}
	s, err := t.prepare()
	if err != nil {
		return nil, err
	}
	err = quiesce(ctx, func() error { return t.snapshot(s) })
	if err == nil {
		err = t.o.DB.Checkpoint(datadir.State(s.dir))
	}
	if err == nil {
		var m *Manifest
		if m, err = t.finish(s); err == nil {
			return &Result{Info: infoOf(m, "local", s.dir), Pause: s.pause, Hashed: s.hashed, manifest: m}, nil
		}
	}
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		t.log.Warn().Err(rerr).Str("dir", s.dir).Msg("removing a failed checkpoint failed")
	}
	return nil, err
}

// prepare names the checkpoint and creates its directories.
func (t *Taker) prepare() (*snapshot, error) {
	created := t.o.Now()
	s := &snapshot{created: created}
	for {
		s.id = newID(created, t.o.DB.WriterID())
		s.dir = filepath.Join(t.o.Dir, s.id)
		if _, err := os.Lstat(s.dir); errors.Is(err, os.ErrNotExist) {
			break
		}
		created = created.Add(time.Millisecond)
	}
	if err := os.MkdirAll(datadir.Staging(s.dir), 0o750); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return s, nil
}

// openPrefix marks the hard link of a file that was open when linked: it
// may still grow, so finish copies the committed prefix out of it.
const openPrefix = ".open."

// snapshot runs inside the pause, between two steps of the writer, and
// does only what is instant: it hard-links every staging file the
// committed state names (no copy, no fsync).
//
// Why this is enough: each step is one atomic Pebble batch, so Pebble's
// checkpoint, taken right after the pause, is the state after some step
// at or after this one. What it names is on disk in the linked files: an
// open file's inode only grows beyond its committed length (fsynced
// before the commit) until it is sealed, and a sealed file never changes.
// A file the deliverer removes after the pause lives on in its link.
// finish links the few files created between the pause and the Pebble
// checkpoint, and sorts out what was delivered meanwhile.
func (t *Taker) snapshot(s *snapshot) error {
	start := time.Now()
	defer func() { s.pause = time.Since(start) }()
	open, err := t.o.DB.Files()
	if err != nil {
		return err
	}
	outbox, err := t.o.DB.Outbox()
	if err != nil {
		return err
	}
	staging := datadir.Staging(s.dir)
	for _, f := range open {
		if err := linkOrCopy(filepath.Join(t.o.StagingDir, f.Name), filepath.Join(staging, openPrefix+f.Name)); err != nil {
			return fmt.Errorf("checkpoint: open staging file %s: %w", f.Name, err)
		}
	}
	for _, o := range outbox {
		err := linkOrCopy(filepath.Join(t.o.StagingDir, o.Name), filepath.Join(staging, o.Name))
		if err != nil && !errors.Is(err, os.ErrNotExist) { // gone: delivered meanwhile
			return fmt.Errorf("checkpoint: sealed staging file %s: %w", o.Name, err)
		}
	}
	return nil
}

// removeUnfinished removes local checkpoints without a manifest: a Take
// that failed or a process that died in one (Takes are serialized, so none
// is in progress).
func (t *Taker) removeUnfinished() {
	entries, err := os.ReadDir(t.o.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(t.o.Dir, e.Name())
		if _, err := os.Stat(filepath.Join(dir, ManifestName)); e.IsDir() && errors.Is(err, os.ErrNotExist) {
			t.log.Warn().Str("dir", dir).Msg("removing an unfinished checkpoint (no manifest)")
			if err := os.RemoveAll(dir); err != nil {
				t.log.Warn().Err(err).Str("dir", dir).Msg("removing an unfinished checkpoint failed")
			}
		}
	}
}

// pruneLocal keeps the newest Keep valid local checkpoints. An invalid
// one (corrupt, files missing) newer than every valid one stays for the
// operator to see in `checkpoint list`; older invalid ones go.
func (t *Taker) pruneLocal() error {
	local, err := ListLocal(t.o.Dir)
	if err != nil {
		return err
	}
	var errs []error
	kept := 0
	for _, c := range local { // newest first
		switch {
		case c.Invalid == "" && kept < t.o.Keep:
			kept++
		case c.Invalid != "" && kept == 0:
		default:
			errs = append(errs, os.RemoveAll(c.Location))
		}
	}
	return errors.Join(errs...)
}

// upload copies a local checkpoint to the remote store and prunes it
// there; failures are reported in the result, not as the Take's error.
func (t *Taker) upload(ctx context.Context, res *Result) {
	st, err := t.o.Remote.Upload(ctx, res.Location, res.manifest)
	res.Upload = &st
	t.m.uploadedBytes.Add(float64(st.Bytes))
	t.m.uploadedFiles.Add(float64(st.Uploaded))
	if err == nil {
		_, err = t.o.Remote.Prune(ctx, t.o.Keep)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		res.RemoteError = err.Error()
		t.log.Info().Str("id", res.ID).Msg("remote copy of the checkpoint cut short; the next start copies it")
	default:
		res.RemoteError = err.Error()
		t.m.remoteFailures.Inc()
		t.log.Warn().Err(err).Str("id", res.ID).Msg("remote copy of the checkpoint failed; the local one is complete")
	}
}

// Sync copies the newest valid local checkpoint to the remote store when
// the store does not have it (after a failed upload, or one cut short by
// a shutdown).
func (t *Taker) Sync(ctx context.Context) error {
	if t.o.Remote == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	local, err := ListLocal(t.o.Dir)
	if err != nil {
		return err
	}
	for _, c := range local {
		if c.Invalid != "" {
			continue
		}
		if _, err := t.o.Remote.Manifest(ctx, c.ID); err == nil || !errors.Is(err, ErrNotFound) {
			return err
		}
		m, err := readManifest(c.Location)
		if err != nil {
			return err
		}
		st, err := t.o.Remote.Upload(ctx, c.Location, m)
		t.m.uploadedBytes.Add(float64(st.Bytes))
		t.m.uploadedFiles.Add(float64(st.Uploaded))
		if err == nil {
			t.log.Info().Str("id", c.ID).Int("files", st.Uploaded).Int64("bytes", st.Bytes).Msg("copied the newest local checkpoint to the remote store")
		}
		return err
	}
	return nil
}
