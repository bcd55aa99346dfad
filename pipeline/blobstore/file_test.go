package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"materializer/pipeline/blobstore"
)

func TestFilePutLayout(t *testing.T) {
	root := t.TempDir()
	bs := mustOpen(t, "file://"+root, blobstore.Options{})
	key := "ev/tab/main/dt=2026-11-21/ev.tab.main.p0.w.0000000001.csv"
	st := mustPut(t, bs, key, []byte("a\n1\n"))
	if st.URL != "file://"+root+"/"+key {
		t.Fatalf("URL = %q", st.URL)
	}
	fi, err := os.Stat(filepath.Join(root, key))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("stat: %v, %v", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(filepath.Join(root, key)))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file (no temp files)", len(entries))
	}
}

// TestFileStaleTempRemoved: a crash left a temp file of the same key.
func TestFileStaleTempRemoved(t *testing.T) {
	root := t.TempDir()
	bs := mustOpen(t, "file://"+root, blobstore.Options{})
	os.MkdirAll(filepath.Join(root, "d"), 0o755)
	stale := filepath.Join(root, "d", ".x.csv.tmp-123")
	os.WriteFile(stale, []byte("half"), 0o600)
	list, _ := bs.List(ctxT(t), "")
	if len(list) != 0 {
		t.Fatalf("List shows temp files: %+v", list)
	}
	mustPut(t, bs, "d/x.csv", []byte("whole\n"))
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp file still there: %v", err)
	}
}

// TestFileConcurrentWritersOneWins: two writers race for one key with
// different bytes: one stores, the other gets ErrConflict.
func TestFileConcurrentWritersOneWins(t *testing.T) {
	root := t.TempDir()
	for i := range 20 {
		a := mustOpen(t, "file://"+root, blobstore.Options{})
		b := mustOpen(t, "file://"+root, blobstore.Options{})
		key := "race/" + strings.Repeat("k", i+1)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, bs := range []blobstore.Store{a, b} {
			wg.Go(func() {
				data := bytes.Repeat([]byte{'a' + byte(j)}, 64<<10)
				_, errs[j] = bs.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data)), blobstore.PutMeta{})
			})
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("errors %v, %v: want exactly one winner", errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, blobstore.ErrConflict) {
				t.Fatalf("loser: %v, want ErrConflict", err)
			}
		}
	}
}

// TestFileCancelledPutLeavesNothing: a Put cancelled mid-copy leaves no
// final file and no temp file.
func TestFileCancelledPutLeavesNothing(t *testing.T) {
	root := t.TempDir()
	bs := mustOpen(t, "file://"+root, blobstore.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	src := &cancelAfter{r: bytes.NewReader(make([]byte, 4<<20)), cancel: cancel, after: 1 << 20}
	_, err := bs.Put(ctx, "d/x.csv", src, 4<<20, blobstore.PutMeta{})
	if !errors.Is(err, context.Canceled) || !blobstore.Retryable(err) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "d"))
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

// cancelAfter cancels its context once after bytes were read.
type cancelAfter struct {
	r      io.ReaderAt
	cancel func()
	after  int64
	read   int64
	mu     sync.Mutex
}

func (c *cancelAfter) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read += int64(n); c.read >= c.after {
		c.cancel()
	}
	return n, err
}
