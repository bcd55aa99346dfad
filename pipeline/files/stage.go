// Package files keeps the staging files on local disk: one open file per
// (event type, table, kind, partition), appended once per processing step
// and fsynced before the step's state batch records its new length.
//
// A crash can leave bytes beyond the recorded length; Open truncates every
// file back to the length its record names and removes files no record
// names, so the files always match the committed state. With gzip each step
// appends one gzip member: the recorded lengths are member boundaries and a
// multi-member file is one valid gzip stream.
package files

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

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
	Dir         string
	Compression string // none | gzip
	Level       int    // gzip level
}

// ErrUnknownFile is returned for an operation on a file that is not open.
var ErrUnknownFile = errors.New("files: no such open file")

// Stage is the set of open staging files. It is used by one goroutine.
type Stage struct {
	opts    Options
	open    map[state.FileID]*file
	dirty   []*file
	gz      *gzip.Writer
	zbuf    bytes.Buffer
	scratch []byte
}

type file struct {
	rec     state.File // as of the last Flush
	f       *os.File
	pending []byte // CSV appended during this step, uncompressed
	dirty   bool   // has pending rows
	isNew   bool   // not written yet: the header goes first
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
		f, err := s.reopen(rec)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.open[rec.ID] = f
	}
	if err := s.removeStrays(known); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stage) reopen(rec state.File) (*file, error) {
	path := filepath.Join(s.opts.Dir, rec.Name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("files: staging file of committed state is missing: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if fi.Size() < rec.Length {
		_ = f.Close()
		return nil, fmt.Errorf("files: %s has %d bytes, committed state says %d", path, fi.Size(), rec.Length)
	}
	if fi.Size() > rec.Length {
		if err := f.Truncate(rec.Length); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("files: truncate %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return &file{rec: rec, f: f}, nil
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
	path := s.Path(rec.Name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("files: create: %w", err)
	}
	rec.Length = 0
	s.open[rec.ID] = &file{rec: rec, f: f, isNew: true, header: header}
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
func (s *Stage) Flush() ([]state.File, error) {
	if len(s.dirty) == 0 {
		return nil, nil
	}
	created := false
	out := make([]state.File, 0, len(s.dirty))
	for _, f := range s.dirty {
		data := f.pending
		if f.isNew && len(f.header) > 0 {
			data = append(append(s.scratch[:0], f.header...), f.pending...)
			s.scratch = data
		}
		if s.gz != nil {
			s.zbuf.Reset()
			s.gz.Reset(&s.zbuf)
			if _, err := s.gz.Write(data); err != nil {
				return nil, fmt.Errorf("files: gzip: %w", err)
			}
			if err := s.gz.Close(); err != nil {
				return nil, fmt.Errorf("files: gzip: %w", err)
			}
			data = s.zbuf.Bytes()
		}
		if failpoint.Enabled && len(data) > 1 {
			// A crash with half the step's bytes of this file written.
			if _, err := f.f.WriteAt(data[:len(data)/2], f.rec.Length); err == nil {
				failpoint.Inject(failpoint.MidFileWrite)
			}
		}
		if _, err := f.f.WriteAt(data, f.rec.Length); err != nil {
			return nil, fmt.Errorf("files: write %s: %w", f.rec.Name, err)
		}
		f.rec.Length += int64(len(data))
		created = created || f.isNew
		f.isNew = false
		f.dirty = false
		if cap(f.pending) > keepPending {
			f.pending = nil // grown for a large step
		}
		out = append(out, f.rec)
	}
	s.shrink()
	if err := syncAll(s.dirty); err != nil {
		return nil, err
	}
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

// syncAll fsyncs the files concurrently: one slow fsync per file would
// otherwise add up on every step.
func syncAll(fs []*file) error {
	if len(fs) == 1 {
		return syncFile(fs[0])
	}
	errs := make(chan error, len(fs))
	for _, f := range fs {
		go func() { errs <- syncFile(f) }()
	}
	var first error
	for range fs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
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
	if err := f.f.Close(); err != nil {
		return state.File{}, fmt.Errorf("files: close %s: %w", f.rec.Name, err)
	}
	return f.rec, nil
}

// Files returns the open files' records, ordered by name.
func (s *Stage) Files() []state.File {
	out := make([]state.File, 0, len(s.open))
	for _, f := range s.open {
		out = append(out, f.rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
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
	for _, f := range s.open {
		_ = f.f.Close()
	}
	s.open = map[state.FileID]*file{}
}
