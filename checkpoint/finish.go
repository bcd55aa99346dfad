package checkpoint

import (
	"errors"
	"fmt"
	"materializer/internal/datadir"
	"materializer/internal/fsync"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"materializer/pipeline/nakadi"
	"materializer/state"
)

// finish completes a checkpoint outside the pause: it reads the
// checkpoint's own state (read-only), cuts the open files to their
// committed lengths, drops links the state does not name, hashes every
// file and writes the manifest, last.
func (t *Taker) finish(s *snapshot) (*Manifest, error) {
	v, err := readState(datadir.State(s.dir), t.o.EventTypes)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Format: FormatVersion, ID: s.id, Created: s.created.UTC(), Writer: v.writer, StateFormat: state.FormatVersion,
		PauseNanos: s.pause.Nanoseconds(), EventTypes: v.eventTypes, Cursors: v.cursors,
	}
	known, err := t.cutStaging(datadir.Staging(s.dir), v, m)
	if err != nil {
		return nil, err
	}
	if m.Files, s.hashed, err = t.hashFiles(s.dir, known); err != nil {
		return nil, err
	}
	if err := writeManifest(s.dir, m); err != nil {
		return nil, err
	}
	return m, nil
}

// cutStaging copies each open file's committed prefix out of its link,
// sorts the outbox into sealed (file linked) and delivered (file gone),
// and removes every other file. It returns the hashed open files.
func (t *Taker) cutStaging(staging string, v *stateView, m *Manifest) (map[string]File, error) {
	known := map[string]File{}
	keep := map[string]bool{}
	for _, f := range v.open {
		link := filepath.Join(staging, openPrefix+f.Name)
		if err := t.linkLate(f.Name, link); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", errVanished, f.Name)
		} else if err != nil {
			return nil, err
		}
		m.Staging.Open = append(m.Staging.Open, StagedFile{Name: f.Name, Length: f.Length})
		keep[f.Name] = true
		if f.Final {
			// Nothing is added to it any more: the link is the file (hashed
			// with the rest).
			if err := os.Rename(link, filepath.Join(staging, f.Name)); err != nil {
				return nil, fmt.Errorf("checkpoint: %w", err)
			}
			continue
		}
		n, sum, err := copyFile(link, filepath.Join(staging, f.Name), f.Length)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: open file %s of the state: %w", f.Name, err)
		}
		known["staging/"+f.Name] = File{Path: "staging/" + f.Name, Size: n, SHA256: sum}
	}
	for _, o := range v.outbox {
		if err := t.sealedFile(staging, o.Name); errors.Is(err, os.ErrNotExist) {
			m.Staging.Delivered = append(m.Staging.Delivered, o.Name)
			continue
		} else if err != nil {
			return nil, err
		}
		m.Staging.Sealed = append(m.Staging.Sealed, o.Name)
		keep[o.Name] = true
	}
	entries, err := os.ReadDir(staging)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			if err := os.Remove(filepath.Join(staging, e.Name())); err != nil {
				return nil, fmt.Errorf("checkpoint: %w", err)
			}
		}
	}
	return known, fsync.Dir(staging)
}

// linkLate links a live staging file to link unless the pause did.
func (t *Taker) linkLate(name, link string) error {
	if _, err := os.Lstat(link); err == nil {
		return nil
	}
	return linkOrCopy(filepath.Join(t.o.StagingDir, name), link)
}

// sealedFile puts a sealed file in place: linked as sealed in the pause,
// linked as open then (sealed since: same inode, now complete), or linked
// now. os.ErrNotExist means it was delivered and removed.
func (t *Taker) sealedFile(staging, name string) error {
	dst := filepath.Join(staging, name)
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	if err := os.Rename(filepath.Join(staging, openPrefix+name), dst); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return linkOrCopy(filepath.Join(t.o.StagingDir, name), dst)
}

// hashFiles lists and hashes every file of the checkpoint. Pebble's SST
// and blob files are immutable: one that is the very same file (hard
// link) as in the previous local checkpoint takes its hash from there.
// It also returns how many bytes it read to hash.
func (t *Taker) hashFiles(dir string, known map[string]File) ([]File, int64, error) {
	prev, prevDir := t.previous(filepath.Base(dir))
	var out []File
	var hashed int64
	for _, sub := range []string{datadir.StateName, datadir.StagingName} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, 0, fmt.Errorf("checkpoint: %w", err)
		}
		for _, e := range entries {
			rel := sub + "/" + e.Name()
			if e.Name() == datadir.LockName || !e.Type().IsRegular() {
				continue // Pebble's lock file of the read-only open
			}
			f, ok := known[rel]
			if !ok {
				f, ok = reuseHash(filepath.Join(dir, rel), filepath.Join(prevDir, rel), prev[rel])
			}
			if !ok {
				size, sum, err := hashFile(filepath.Join(dir, rel))
				if err != nil {
					return nil, 0, err
				}
				f = File{Path: rel, Size: size, SHA256: sum}
				hashed += size
			}
			out = append(out, f)
		}
	}
	return out, hashed, nil
}

// immutable reports whether Pebble never rewrites a file of that name.
func immutable(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}

// reuseHash returns the previous checkpoint's entry when path is the same
// immutable file as prevPath.
func reuseHash(path, prevPath string, prev File) (File, bool) {
	if prev.Path == "" || !immutable(path) {
		return File{}, false
	}
	a, err := os.Stat(path)
	if err != nil {
		return File{}, false
	}
	b, err := os.Stat(prevPath)
	if err != nil || !os.SameFile(a, b) || a.Size() != prev.Size {
		return File{}, false
	}
	return prev, true
}

// previous returns the files of the newest valid local checkpoint other
// than id, by path, and its directory.
func (t *Taker) previous(id string) (map[string]File, string) {
	local, err := ListLocal(t.o.Dir)
	if err != nil {
		return nil, ""
	}
	for _, c := range local {
		if c.ID == id || c.Invalid != "" {
			continue
		}
		m, err := readManifest(c.Location)
		if err != nil {
			return nil, ""
		}
		out := make(map[string]File, len(m.Files))
		for _, f := range m.Files {
			out[f.Path] = f
		}
		return out, c.Location
	}
	return nil, ""
}

// stateView is what a checkpoint's state holds that the manifest names.
type stateView struct {
	writer     string
	open       []state.File
	outbox     []state.Outbox
	eventTypes []EventType
	cursors    []Cursor
}

// readState reads a checkpoint's state without changing it.
func readState(dir string, configured []EventType) (*stateView, error) {
	db, err := state.OpenReadOnly(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	defer func() { _ = db.Close() }()
	v := &stateView{writer: db.WriterID()}
	if v.open, err = db.Files(); err != nil {
		return nil, err
	}
	if v.outbox, err = db.Outbox(); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, et := range configured {
		names[et.Name] = true
		if et.Fingerprint, err = db.Fingerprint(et.Name); err != nil {
			return nil, err
		}
		if et.Counters, err = db.Counters(et.Name); err != nil {
			return nil, err
		}
		v.eventTypes = append(v.eventTypes, et)
	}
	v.cursors, err = cursorsOf(db, names)
	return v, err
}

// cursorsOf returns the applied offset of every partition of the named
// event types that has one, ordered by event type and partition.
func cursorsOf(db *state.DB, names map[string]bool) ([]Cursor, error) {
	slots, _, err := db.Slots()
	if err != nil {
		return nil, err
	}
	var out []Cursor
	for p, slot := range slots {
		if !names[p.EventType] {
			continue
		}
		c, err := db.Cursor(slot)
		if err != nil {
			return nil, err
		}
		if c.Offset != "" {
			out = append(out, Cursor{EventType: p.EventType, Partition: p.Partition, Offset: c.Offset})
		}
	}
	sortCursors(out)
	return out, nil
}

// sortCursors orders by event type, then partition (numeric ones by value).
func sortCursors(cs []Cursor) {
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.EventType != b.EventType {
			return a.EventType < b.EventType
		}
		return nakadi.ComparePartitions(a.Partition, b.Partition) < 0
	})
}
