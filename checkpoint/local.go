package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Info describes a checkpoint for listing.
type Info struct {
	ID       string    `json:"id"`
	Where    string    `json:"where"` // local | remote
	Created  time.Time `json:"created"`
	Writer   string    `json:"writer"`
	Size     int64     `json:"size"`
	Files    int       `json:"files"`
	Cursors  []Cursor  `json:"cursors"`
	Location string    `json:"location"` // local directory or remote manifest URL
	// Invalid says why the checkpoint cannot be restored (unfinished,
	// corrupt, files missing); empty for a valid one.
	Invalid string `json:"invalid,omitempty"`
}

func infoOf(m *Manifest, where, location string) Info {
	return Info{ID: m.ID, Where: where, Created: m.Created, Writer: m.Writer, Size: m.Size(), Files: len(m.Files),
		Cursors: m.Cursors, Location: location}
}

// ListLocal lists the checkpoints in dir, newest first, valid or not. A
// checkpoint is valid when its manifest reads and every file it names is
// there with its size (the checksums are verified by a restore). A missing
// dir lists nothing.
func ListLocal(dir string) ([]Info, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var out []Info
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		out = append(out, localInfo(filepath.Join(dir, e.Name())))
	}
	sortInfos(out)
	return out, nil
}

// localInfo describes one local checkpoint directory.
func localInfo(dir string) Info {
	m, err := readManifest(dir)
	if err != nil {
		return Info{ID: filepath.Base(dir), Where: "local", Location: dir, Invalid: err.Error()}
	}
	info := infoOf(m, "local", dir)
	if m.ID != filepath.Base(dir) {
		info.Invalid = fmt.Sprintf("manifest names id %s", m.ID)
	}
	for _, f := range m.Files {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Path)))
		switch {
		case err != nil:
			info.Invalid = fmt.Sprintf("file %s: %v", f.Path, err)
		case fi.Size() != f.Size:
			info.Invalid = fmt.Sprintf("file %s has %d bytes, the manifest says %d", f.Path, fi.Size(), f.Size)
		}
		if info.Invalid != "" {
			break
		}
	}
	return info
}

// sortInfos orders newest first (ids sort by time), local before remote.
func sortInfos(infos []Info) {
	sort.SliceStable(infos, func(i, j int) bool {
		if infos[i].ID != infos[j].ID {
			return infos[i].ID > infos[j].ID
		}
		return infos[i].Where < infos[j].Where
	})
}

// List merges local and remote listings, newest first.
func List(local, remote []Info) []Info {
	out := append(append([]Info{}, local...), remote...)
	sortInfos(out)
	return out
}
