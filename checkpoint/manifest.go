package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"materializer/internal/datadir"
	"materializer/internal/fsync"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"materializer/state"
)

// FormatVersion is the manifest format this binary writes and reads.
const FormatVersion = 1

// ManifestName is the manifest's file name in a local checkpoint directory.
// It is written last: a directory without it is an unfinished checkpoint.
const ManifestName = "MANIFEST.json"

// Errors of the checkpoint package.
var (
	// ErrInvalid: a checkpoint is partial or corrupt (missing manifest or
	// file, wrong size or checksum, unreadable state).
	ErrInvalid = errors.New("checkpoint: invalid checkpoint")
	// ErrNotFound: no (valid) checkpoint with that id.
	ErrNotFound = errors.New("checkpoint: not found")
	// ErrMismatch: the checkpoint was taken under a config that shapes
	// state differently from the one given.
	ErrMismatch = errors.New("checkpoint: config does not match the checkpoint")
	// ErrRestorePending: a restore swapped the data dir in but has not
	// reset the Nakadi cursors yet.
	ErrRestorePending = errors.New("checkpoint: restore pending")
)

// Manifest describes one checkpoint. A checkpoint exists (locally or
// remotely) exactly when its manifest does.
type Manifest struct {
	Format      int       `json:"format"`
	ID          string    `json:"id"`
	Created     time.Time `json:"created"`
	Writer      string    `json:"writer"`       // writer id of the daemon that took it
	StateFormat int       `json:"state_format"` // state.FormatVersion
	// PauseNanos is how long ingestion was paused to take it.
	PauseNanos int64       `json:"pause_ns"`
	EventTypes []EventType `json:"event_types"`
	Cursors    []Cursor    `json:"cursors"`
	Staging    Staging     `json:"staging"`
	Files      []File      `json:"files"`
}

// EventType is what the checkpoint knows of one configured event type.
type EventType struct {
	Name string `json:"name"`
	// Fingerprint is the state's fingerprint of partition key and
	// ordering (pipeline.Fingerprint), as stored in the state.
	Fingerprint string         `json:"fingerprint"`
	Tables      []Table        `json:"tables"`
	Counters    state.Counters `json:"counters"`
}

// Table is a table's name and columns ("name:type", in CSV order).
type Table struct {
	Name    string   `json:"name"`
	Columns []string `json:"columns"`
}

// Cursor is one partition's applied offset: everything up to and
// including it is in the checkpoint's state.
type Cursor struct {
	EventType string `json:"event_type"`
	Partition string `json:"partition"`
	Offset    string `json:"offset"`
}

// Staging names the staging files of the checkpoint.
type Staging struct {
	// Open files, cut to their committed length (their record's Length).
	Open []StagedFile `json:"open"`
	// Sealed files waiting in the outbox (whole).
	Sealed []string `json:"sealed"`
	// Delivered: outbox entries in the state whose files the deliverer
	// finished while the checkpoint was taken. A restore drops them.
	Delivered []string `json:"delivered,omitempty"`
}

// StagedFile is an open staging file and its committed length.
type StagedFile struct {
	Name   string `json:"name"`
	Length int64  `json:"length"`
}

// File is one file of the checkpoint, relative to its root ("state/…",
// "staging/…"), with its size and sha256 (lower-case hex).
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Size is the sum of the checkpoint's file sizes.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// EventType returns the named event type's entry.
func (m *Manifest) EventType(name string) (EventType, bool) {
	for _, et := range m.EventTypes {
		if et.Name == name {
			return et, true
		}
	}
	return EventType{}, false
}

// idLayout formats the time part of an id: sortable, file-name safe.
const idLayout = "20060102T150405.000Z"

// newID names a checkpoint taken at t by writer: ids sort by time.
func newID(t time.Time, writer string) string {
	return t.UTC().Format(idLayout) + "-" + writer
}

// checkID refuses ids that could escape a directory or a key prefix.
func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\\x00") || id == "." || id == ".." || strings.HasPrefix(id, ".") {
		return fmt.Errorf("%w: bad id %q", ErrNotFound, id)
	}
	return nil
}

// decodeManifest parses and checks a manifest.
func decodeManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrInvalid, err)
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("%w: manifest format %d, this binary reads format %d", ErrInvalid, m.Format, FormatVersion)
	}
	if m.StateFormat != state.FormatVersion {
		return nil, fmt.Errorf("%w: state format %d, this binary reads format %d", ErrInvalid, m.StateFormat, state.FormatVersion)
	}
	if err := checkID(m.ID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, f := range m.Files {
		if !safeRel(f.Path) || len(f.SHA256) != 64 || f.Size < 0 {
			return nil, fmt.Errorf("%w: manifest names a bad file %q", ErrInvalid, f.Path)
		}
	}
	return &m, nil
}

// safeRel accepts "state/x" and "staging/x" with a plain file name.
func safeRel(p string) bool {
	dir, name, ok := strings.Cut(p, "/")
	return ok && (dir == datadir.StateName || dir == datadir.StagingName) && name != "" && name != "." && name != ".." &&
		!strings.ContainsAny(name, "/\\\x00")
}

func encodeManifest(m *Manifest) []byte {
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	data, _ := json.MarshalIndent(m, "", "  ")
	return append(data, '\n')
}

// writeManifest writes the manifest durably: temp file, fsync, rename,
// fsync of the directory. Only then does the checkpoint exist.
func writeManifest(dir string, m *Manifest) error {
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := writeFileSync(tmp, encodeManifest(m)); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestName)); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return fsync.Dir(dir)
}

// ReadManifest reads the manifest of the local checkpoint in dir.
func ReadManifest(dir string) (*Manifest, error) { return readManifest(dir) }

// readManifest reads a local checkpoint's manifest.
func readManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no manifest (unfinished)", ErrInvalid, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return decodeManifest(data)
}
