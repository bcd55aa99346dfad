// Package files keeps the staging files on local disk: one open file per
// (event type, table, kind, partition), appended once per processing step
// and fsynced before the step's state batch records its new length.
//
// A crash can leave bytes beyond the recorded length; Open truncates every
// file back to the length its record names and removes files no record
// names, so the files always match the committed state. With gzip each step
// appends one gzip member: the recorded lengths are member boundaries and a
// multi-member file is one valid gzip stream.
//
// A daemon with many event types has many open staging files (event type ×
// table × kind × partition), more than it may hold file descriptors: an
// open staging file is logical, and at most Options.MaxOpenFiles of them
// hold an OS handle at a time (the least recently written is closed first,
// as Pebble's table cache does). A handle is only closed once what was
// written through it is fsynced.
package files

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"

	"materializer/internal/failpoint"
	"materializer/internal/fsync"
	"materializer/state"
)

// Kinds of files (docs/files-and-notices.md).
const (
	KindMain       = "main"
	KindCorrection = "correction"
	KindRejected   = "rejected"
)

// RejectedTable is the table name of rejected files.
const RejectedTable = "_rejected"

// Options configure the staging area.
type Options struct {
	Dir          string
	Compression  string // none | gzip
	Level        int    // gzip level
	MaxOpenFiles int    // OS handles held at most; default 256
}

// syncParallel is how many fsyncs a Flush runs at once.
const syncParallel = 32

// ErrUnknownFile is returned for an operation on a file that is not open.
var ErrUnknownFile = errors.New("files: no such open file")

// Stage is the set of open staging files. It is used by one goroutine.
type Stage struct {
	opts    Options
	open    map[state.FileID]*file
	handles list.List // files holding an OS handle, most recently written first
	dirty   []*file
	gz      *gzip.Writer
	zbuf    bytes.Buffer
	scratch []byte
}

type file struct {
	rec     state.File    // as of the last Flush
	f       *os.File      // nil while the file holds no OS handle
	handle  *list.Element // its place in Stage.handles while f is set
	pending []byte        // CSV appended during this step, uncompressed
	dirty   bool          // has pending rows
	isNew   bool          // not written yet: the header goes first
	header  []byte
}

// Name is the file name of docs/files-and-notices.md without the directories.
func Name(id state.FileID, writer string, seq uint64, compression string) string {
	n := fmt.Sprintf("%s.%s.%s.p%s.%s.%010d.csv", id.EventType, id.Table, id.Kind, id.Partition, writer, seq)
	if compression == "gzip" {
		n += ".gz"
	}
	return n
}

// ObjectKey is the key of a sealed file relative to the storage prefix:
// {event_type}/{table}/{kind}/dt=YYYY-MM-DD/{name}, dt being the UTC date of
// sealing.
func ObjectKey(f *state.File, sealed time.Time) string {
	return strings.Join([]string{f.ID.EventType, f.ID.Table, f.ID.Kind, "dt=" + sealed.UTC().Format("2006-01-02"), f.Name}, "/")
}

// Open recovers the staging directory against the committed records: each
// open file is truncated to its recorded length; sealed files awaiting
// delivery (keep) are left alone; every other file — a crash's leftovers —
// is removed.
func Open(opts Options, open []state.File, keep []string) (*Stage, error) {
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	if opts.MaxOpenFiles <= 0 {
		opts.MaxOpenFiles = 256
	}
	s := &Stage{opts: opts, open: map[state.FileID]*file{}}
	if opts.Compression == "gzip" {
		gz, err := gzip.NewWriterLevel(&s.zbuf, opts.Level)
		if err != nil {
			return nil, fmt.Errorf("files: gzip level %d: %w", opts.Level, err)
		}
		s.gz = gz
	}
	known := map[string]bool{}
	for _, name := range keep {
		known[name] = true
	}
	for _, rec := range open {
		known[rec.Name] = true
		if err := s.recover(rec); err != nil {
			return nil, err
		}
		s.open[rec.ID] = &file{rec: rec}
	}
	if err := s.removeStrays(known); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// recover cuts an open file back to its committed length (a crash may have
// left more) and checks it is not shorter.
func (s *Stage) recover(rec state.File) error {
	path := filepath.Join(s.opts.Dir, rec.Name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("files: staging file of committed state is missing: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < rec.Length {
		return fmt.Errorf("files: %s has %d bytes, committed state says %d", path, fi.Size(), rec.Length)
	}
	if fi.Size() > rec.Length {
		if err := f.Truncate(rec.Length); err != nil {
			return fmt.Errorf("files: truncate %s: %w", path, err)
		}
		return f.Sync()
	}
	return nil
}

// acquire gives f an OS handle (opening it again if it had one before) and
// makes it the most recently used; a handle beyond MaxOpenFiles is closed,
// least recently written first. Callers only let that happen to files whose
// writes are fsynced.
func (s *Stage) acquire(f *file, flags int) error {
	if f.f != nil {
		s.handles.MoveToFront(f.handle)
		return nil
	}
	h, err := os.OpenFile(s.Path(f.rec.Name), flags, 0o640)
	if err != nil {
		return err
	}
	f.f, f.handle = h, s.handles.PushFront(f)
	s.trim(s.opts.MaxOpenFiles)
	return nil
}

// trim closes handles, least recently used first, until at most n are open.
func (s *Stage) trim(n int) {
	for s.handles.Len() > n {
		s.release(s.handles.Back().Value.(*file))
	}
}

// release closes f's handle, if it has one.
func (s *Stage) release(f *file) error {
	if f.f == nil {
		return nil
	}
	s.handles.Remove(f.handle)
	err := f.f.Close()
	f.f, f.handle = nil, nil
	return err
}

func (s *Stage) removeStrays(known map[string]bool) error {
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("files: %w", err)
	}
	removed := false
	for _, e := range entries {
		if e.IsDir() || known[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(s.opts.Dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("files: remove stray %s: %w", e.Name(), err)
		}
		removed = true
	}
	if removed {
		return fsync.Dir(s.opts.Dir)
	}
	return nil
}

// Path is where a staging file lives.
func (s *Stage) Path(name string) string { return filepath.Join(s.opts.Dir, name) }

// Lookup returns the record of an open file as of the last Flush.
func (s *Stage) Lookup(id state.FileID) (state.File, bool) {
	f, ok := s.open[id]
	if !ok {
		return state.File{}, false
	}
	return f.rec, true
}

// Create opens a new file for id with the given record (Name, Seq, Columns,
// Header, ...) and header line. Its bytes reach disk at the next Flush.
func (s *Stage) Create(rec state.File, header []byte) error {
	if _, ok := s.open[rec.ID]; ok {
		return fmt.Errorf("files: %s already has an open file", rec.Name)
	}
	rec.Length = 0
	f := &file{rec: rec, isNew: true, header: header}
	if err := s.acquire(f, os.O_RDWR|os.O_CREATE|os.O_EXCL); err != nil {
		return fmt.Errorf("files: create: %w", err)
	}
	s.open[rec.ID] = f
	return nil
}

// Append adds CSV rows to an open file for this step. events is how many
// events the rows came from; occurred (unix ns, 0 = unknown) widens the
// file's occurred_at range.
func (s *Stage) Append(id state.FileID, rows []byte, nrows, events int, occurred int64) error {
	f, ok := s.open[id]
	if !ok {
		return ErrUnknownFile
	}
	if !f.dirty {
		f.dirty = true
		f.pending = f.pending[:0]
		s.dirty = append(s.dirty, f)
	}
	f.pending = append(f.pending, rows...)
	f.rec.Rows += int64(nrows)
	f.rec.Events += int64(events)
	if occurred != 0 {
		if f.rec.MinOccurred == 0 || occurred < f.rec.MinOccurred {
			f.rec.MinOccurred = occurred
		}
		if occurred > f.rec.MaxOccurred {
			f.rec.MaxOccurred = occurred
		}
	}
	return nil
}

// Flush writes this step's rows of every file it touched (one gzip member
// each), fsyncs them and, if files were created, the directory. It returns
// the updated records for the step's state batch. After an error the stage
// is unusable: recover with Open from the committed records.
//
// Files are written and fsynced in groups of at most half MaxOpenFiles, so
// a step that touches more files than may hold handles closes only handles
// whose writes are fsynced.
func (s *Stage) Flush() ([]state.File, error) {
	if len(s.dirty) == 0 {
		return nil, nil
	}
	created := false
	out := make([]state.File, 0, len(s.dirty))
	group := max(1, s.opts.MaxOpenFiles/2)
	for start := 0; start < len(s.dirty); start += group {
		part := s.dirty[start:min(start+group, len(s.dirty))]
		for _, f := range part {
			created = created || f.isNew
			if err := s.write(f); err != nil {
				return nil, err
			}
			out = append(out, f.rec)
		}
		if err := syncAll(part); err != nil {
			return nil, err
		}
	}
	s.shrink()
	s.dirty = s.dirty[:0]
	if created {
		if err := fsync.Dir(s.opts.Dir); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Buffers kept from one step to the next up to these sizes; larger ones,
// grown for a large event or step, are dropped once written, so that the
// memory budget holds over time: each open file's pending rows, and the
// stage's one header scratch and gzip buffer.
const (
	keepPending = 64 << 10
	keepBuffer  = 1 << 20
)

// shrink drops the stage's buffers that grew beyond keepBuffer.
func (s *Stage) shrink() {
	if cap(s.scratch) > keepBuffer {
		s.scratch = nil
	}
	if s.zbuf.Cap() > keepBuffer {
		s.zbuf = bytes.Buffer{} // the gzip writer is reset onto it before each use
	}
}

// write appends a dirty file's pending rows (the header first in a new file).
func (s *Stage) write(f *file) error {
	data := f.pending
	if f.isNew && len(f.header) > 0 {
		data = append(append(s.scratch[:0], f.header...), f.pending...)
		s.scratch = data
	}
	if s.gz != nil {
		s.zbuf.Reset()
		s.gz.Reset(&s.zbuf)
		if _, err := s.gz.Write(data); err != nil {
			return fmt.Errorf("files: gzip: %w", err)
		}
		if err := s.gz.Close(); err != nil {
			return fmt.Errorf("files: gzip: %w", err)
		}
		data = s.zbuf.Bytes()
	}
	if err := s.acquire(f, os.O_RDWR); err != nil {
		return fmt.Errorf("files: open %s: %w", f.rec.Name, err)
	}
	if failpoint.Enabled && len(data) > 1 {
		// A crash with half the step's bytes of this file written.
		if _, err := f.f.WriteAt(data[:len(data)/2], f.rec.Length); err == nil {
			failpoint.Inject(failpoint.MidFileWrite)
		}
	}
	if _, err := f.f.WriteAt(data, f.rec.Length); err != nil {
		return fmt.Errorf("files: write %s: %w", f.rec.Name, err)
	}
	f.rec.Length += int64(len(data))
	f.isNew = false
	f.dirty = false
	if cap(f.pending) > keepPending {
		f.pending = nil // grown for a large step
	}
	return nil
}

// syncAll fsyncs the files, syncParallel at a time: one slow fsync per file
// would otherwise add up on every step.
func syncAll(fs []*file) error {
	if len(fs) == 1 {
		return syncFile(fs[0])
	}
	var g errgroup.Group
	g.SetLimit(syncParallel)
	for _, f := range fs {
		g.Go(func() error { return syncFile(f) })
	}
	return g.Wait()
}

func syncFile(f *file) error {
	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("files: fsync %s: %w", f.rec.Name, err)
	}
	return nil
}

// Seal closes an open file whose rows are all flushed and hands back its
// final record; the file stays on disk, under its name, for delivery.
func (s *Stage) Seal(id state.FileID) (state.File, error) {
	f, ok := s.open[id]
	if !ok {
		return state.File{}, ErrUnknownFile
	}
	if f.dirty {
		return state.File{}, fmt.Errorf("files: seal %s with unflushed rows", f.rec.Name)
	}
	delete(s.open, id)
	if err := s.release(f); err != nil {
		return state.File{}, fmt.Errorf("files: close %s: %w", f.rec.Name, err)
	}
	return f.rec, nil
}

// Each calls fn with the record of every open file, in no particular
// order; fn must not keep or change it.
func (s *Stage) Each(fn func(rec *state.File)) {
	for _, f := range s.open {
		fn(&f.rec)
	}
}

// Remove deletes a delivered file.
func (s *Stage) Remove(name string) error {
	if err := os.Remove(s.Path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("files: %w", err)
	}
	return nil
}

// Close closes every open file handle (the files stay).
func (s *Stage) Close() {
	s.trim(0)
	s.open = map[state.FileID]*file{}
}
