package blobstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"io/fs"
	"materializer/internal/fsync"
	"os"
	"path/filepath"
	"strings"
)

// Temp files are hidden dot files beside their final name:
// .{name}.tmp-{random}. Loaders scanning the tree should skip dot files.
func tempPattern(name string) string { return "." + name + ".tmp-*" }

func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// removeStaleTemps deletes the temp files of a key once the key is final:
// ours, those a crashed earlier attempt left, and those of a competing
// writer (whose link would fail anyway; it then compares contents).
func removeStaleTemps(dir, name string) {
	stale, _ := filepath.Glob(filepath.Join(dir, tempPattern(name)))
	for _, p := range stale {
		os.Remove(p)
	}
}

// mkdirAllSync creates dir and its missing parents below root, syncing
// each parent whose entries changed so the new directories are durable.
func mkdirAllSync(root, dir string) error {
	if dir == root {
		return nil
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := mkdirAllSync(root, parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return fsync.Dir(parent)
}

// hashWriter hashes what passes through it on the way to w.
type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func newHashWriter(w io.Writer) *hashWriter { return &hashWriter{w: w, h: sha256.New()} }

func (hw *hashWriter) Write(p []byte) (int, error) {
	hw.h.Write(p)
	return hw.w.Write(p)
}

func (hw *hashWriter) sum() string { return hex.EncodeToString(hw.h.Sum(nil)) }
