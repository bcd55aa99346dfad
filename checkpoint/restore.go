package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"materializer/internal/datadir"
	"materializer/internal/fsync"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"materializer/pipeline/files"
	"materializer/state"
)

// Source is where checkpoints can be restored from: the local directory
// (DATA_DIR/checkpoints, which may be gone) and the remote copy.
type Source struct {
	LocalDir string
	Remote   *Remote // nil: local only
}

// List lists local and remote checkpoints, newest first (local first for
// the same id), invalid ones with Invalid set.
func (s Source) List(ctx context.Context) ([]Info, error) {
	local, err := ListLocal(s.LocalDir)
	if err != nil {
		return nil, err
	}
	var remote []Info
	if s.Remote != nil {
		if remote, err = s.Remote.List(ctx); err != nil {
			return nil, err
		}
	}
	return List(local, remote), nil
}

// Staged is a checkpoint copied next to the data dir and verified, not
// yet in place.
type Staged struct {
	Dir      string
	Manifest *Manifest
	From     Info
	lock     *datadir.Lock // Dir/LOCK: the data dir's lock once swapped in
}

// Stage copies checkpoint id ("latest": the newest valid one) into a new
// directory beside dataDir, verifying every file's size and sha256 on the
// way. check runs on the manifest before anything is copied (the config
// comparison); its error ends Stage. With "latest", a checkpoint that is
// invalid or fails verification is reported to skipped and the next older
// one is tried.
func (s Source) Stage(ctx context.Context, id, dataDir string, now time.Time,
	check func(*Manifest) error, skipped func(Info, error)) (*Staged, error) {
	list, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	tried := false
	for _, c := range list {
		if id != "latest" && c.ID != id {
			continue
		}
		tried = true
		if c.Invalid != "" {
			skipped(c, fmt.Errorf("%w: %s", ErrInvalid, c.Invalid))
			continue
		}
		st, err := s.stageOne(ctx, c, dataDir, now, check)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, ErrInvalid) {
			return nil, err
		}
		skipped(c, err)
	}
	if !tried {
		return nil, fmt.Errorf("%w: no checkpoint %q (local %s%s)", ErrNotFound, id, s.LocalDir, s.remoteName())
	}
	return nil, fmt.Errorf("%w: no valid checkpoint %q", ErrNotFound, id)
}

func (s Source) remoteName() string {
	if s.Remote == nil {
		return ", no remote"
	}
	return ", remote " + s.Remote.store.URL("")
}

// stageOne copies one checkpoint; ErrInvalid when it does not verify.
func (s Source) stageOne(ctx context.Context, c Info, dataDir string, now time.Time, check func(*Manifest) error) (*Staged, error) {
	var m *Manifest
	var err error
	if c.Where == "local" {
		m, err = readManifest(c.Location)
	} else {
		m, err = s.Remote.Manifest(ctx, c.ID)
	}
	if err != nil {
		return nil, err
	}
	if err := check(m); err != nil {
		return nil, err
	}
	st, err := newStaged(dataDir, now)
	if err != nil {
		return nil, err
	}
	st.Manifest, st.From = m, c
	if c.Where == "local" {
		err = copyLocal(c.Location, m, st.Dir)
	} else {
		err = s.Remote.Fetch(ctx, m, st.Dir)
	}
	if err == nil {
		_, err = readState(datadir.State(st.Dir), nil) // Pebble opens it
	}
	if err != nil {
		st.Discard()
		return nil, err
	}
	return st, nil
}

// newStaged creates DATA_DIR.restore-<time> holding a locked LOCK file.
func newStaged(dataDir string, now time.Time) (*Staged, error) {
	dir := fmt.Sprintf("%s.restore-%s", filepath.Clean(dataDir), now.UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	lock, err := datadir.Create(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &Staged{Dir: dir, lock: lock}, nil
}

// copyLocal copies a local checkpoint's files, verifying each.
func copyLocal(src string, m *Manifest, dst string) error {
	for _, sub := range []string{datadir.StateName, datadir.StagingName} {
		if err := os.MkdirAll(filepath.Join(dst, sub), 0o750); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	for _, f := range m.Files {
		n, sum, err := copyFile(filepath.Join(src, filepath.FromSlash(f.Path)), filepath.Join(dst, filepath.FromSlash(f.Path)), -1)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s is missing", ErrInvalid, f.Path)
		}
		if err != nil {
			return err
		}
		if err := verify(f, n, sum); err != nil {
			return err
		}
	}
	return nil
}

// Discard removes the staged copy (declined or failed restore).
func (st *Staged) Discard() {
	st.Release()
	_ = os.RemoveAll(st.Dir)
}

// Release drops the lock the staged directory holds.
func (st *Staged) Release() {
	if st.lock != nil {
		_ = st.lock.Release()
		st.lock = nil
	}
}

// Prepared says what Prepare changed.
type Prepared struct {
	Writer    string            `json:"writer"`    // the new writer id
	Renamed   map[string]string `json:"renamed"`   // open staging files: old name → new name
	Delivered []string          `json:"delivered"` // outbox entries dropped (delivered while the checkpoint was taken)
}

// Prepare makes the staged state the restored daemon's: a new writer id
// (so its files never overwrite what the lost daemon delivered after the
// checkpoint), the open staging files renamed for it (they are re-sealed
// under the new id; the lost daemon may have sealed longer versions under
// the old names), and the outbox entries of files delivered during the
// checkpoint dropped. Sealed files in the outbox keep their names and
// keys: they are byte-identical to what the lost daemon uploaded, so a
// repeated upload finds the same object and a repeated notice is
// de-duplicated by its id.
func (st *Staged) Prepare(writer string) (*Prepared, error) {
	db, err := state.Open(datadir.State(st.Dir), state.Options{Logger: zerolog.Nop()})
	if err != nil {
		return nil, err
	}
	defer func() { _ = db.Close() }()
	p := &Prepared{Writer: writer, Renamed: map[string]string{}}
	b := db.NewBatch()
	defer b.Close()
	if err := st.renameOpen(db, b, p); err != nil {
		return nil, err
	}
	if err := st.dropDelivered(db, b, p); err != nil {
		return nil, err
	}
	if err := b.Commit(true); err != nil {
		return nil, err
	}
	if err := db.SetWriterID(writer); err != nil {
		return nil, err
	}
	return p, fsync.Dir(datadir.Staging(st.Dir))
}

func (st *Staged) renameOpen(db *state.DB, b *state.Batch, p *Prepared) error {
	open, err := db.Files()
	if err != nil {
		return err
	}
	staging := datadir.Staging(st.Dir)
	for _, f := range open {
		fi, err := os.Stat(filepath.Join(staging, f.Name))
		if err != nil || fi.Size() != f.Length {
			return fmt.Errorf("%w: open staging file %s does not match its committed length %d", ErrInvalid, f.Name, f.Length)
		}
		name := files.Name(f.ID, p.Writer, f.Seq, f.Compression)
		if err := os.Rename(filepath.Join(staging, f.Name), filepath.Join(staging, name)); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		p.Renamed[f.Name] = name
		f.Name, f.Writer = name, p.Writer
		b.PutFile(&f)
	}
	return nil
}

func (st *Staged) dropDelivered(db *state.DB, b *state.Batch, p *Prepared) error {
	outbox, err := db.Outbox()
	if err != nil {
		return err
	}
	delivered := map[string]bool{}
	for _, name := range st.Manifest.Staging.Delivered {
		delivered[name] = true
	}
	for _, o := range outbox {
		if delivered[o.Name] {
			b.DeleteOutbox(o.ID, o.Seq)
			p.Delivered = append(p.Delivered, o.Name)
			continue
		}
		if _, err := os.Stat(filepath.Join(datadir.Staging(st.Dir), o.Name)); err != nil {
			return fmt.Errorf("%w: sealed staging file %s is missing", ErrInvalid, o.Name)
		}
	}
	return nil
}
