package files

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"materializer/state"
)

var id = state.FileID{EventType: "article.updated", Table: "article", Kind: KindMain, Partition: "3"}

func newRec(seq uint64, comp string) state.File {
	return state.File{ID: id, Seq: seq, Name: Name(id, "w1", seq, comp), Header: true, Compression: comp, Created: 1}
}

func readAll(t *testing.T, path string, comp string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if comp != "gzip" {
		return string(b)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestNamesAndKeys(t *testing.T) {
	rec := newRec(42, "gzip")
	rec.Name = Name(id, "ab12", 42, "gzip")
	if rec.Name != "article.updated.article.main.p3.ab12.0000000042.csv.gz" {
		t.Fatal(rec.Name)
	}
	k := ObjectKey(&rec, time.Date(2026, 11, 21, 23, 59, 0, 0, time.FixedZone("", -3600)))
	if k != "article.updated/article/main/dt=2026-11-22/article.updated.article.main.p3.ab12.0000000042.csv.gz" {
		t.Fatal(k)
	}
}

// A crash after a flush but before the state commit leaves bytes beyond the
// recorded length and files no record names: Open removes both.
func TestRecoveryTruncatesAndRemovesStrays(t *testing.T) {
	for _, comp := range []string{"none", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, Compression: comp, Level: 1}
			s, err := Open(opts, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Create(newRec(1, comp), []byte("a,b\n")); err != nil {
				t.Fatal(err)
			}
			must(t, s.Append(id, []byte("1,x\n"), 1, 1, 5))
			recs, err := s.Flush()
			if err != nil || len(recs) != 1 {
				t.Fatal(recs, err)
			}
			committed := recs[0]
			// The next step writes but "crashes" before its state batch commits.
			must(t, s.Append(id, []byte("2,y\n"), 1, 1, 7))
			if _, err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			other := newRec(2, comp)
			other.ID.Partition = "4"
			other.Name = Name(other.ID, "w1", 2, comp)
			must(t, s.Create(other, []byte("a,b\n")))
			must(t, s.Append(other.ID, []byte("3,z\n"), 1, 1, 0))
			if _, err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			must(t, os.WriteFile(filepath.Join(dir, "sealed.csv"), []byte("keep"), 0o640))
			s.Close()

			s, err = Open(opts, []state.File{committed}, []string{"sealed.csv"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := readAll(t, s.Path(committed.Name), comp); got != "a,b\n1,x\n" {
				t.Fatalf("after recovery: %q", got)
			}
			if _, err := os.Stat(s.Path(other.Name)); !os.IsNotExist(err) {
				t.Fatalf("stray file survived: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "sealed.csv")); err != nil {
				t.Fatalf("sealed file removed: %v", err)
			}
			// Appending continues after the committed prefix; gzip stays one valid stream.
			must(t, s.Append(id, []byte("4,w\n"), 1, 1, 3))
			recs, err = s.Flush()
			if err != nil {
				t.Fatal(err)
			}
			if recs[0].Rows != 2 || recs[0].MinOccurred != 3 || recs[0].MaxOccurred != 5 {
				t.Fatalf("record %+v", recs[0])
			}
			if got := readAll(t, s.Path(committed.Name), comp); got != "a,b\n1,x\n4,w\n" {
				t.Fatalf("after append: %q", got)
			}
			sealed, err := s.Seal(id)
			if err != nil || sealed.Length != recs[0].Length {
				t.Fatal(sealed, err)
			}
			if _, open := s.Lookup(id); open {
				t.Fatal("sealed file still open")
			}
		})
	}
}

func TestMissingCommittedFileIsAnError(t *testing.T) {
	rec := newRec(1, "none")
	rec.Length = 10
	if _, err := Open(Options{Dir: t.TempDir()}, []state.File{rec}, nil); err == nil {
		t.Fatal("opened state whose staging file is gone")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Buffers grown for one large step (a file's pending rows, the header
// scratch, the gzip buffer) are not kept for the small steps after it.
func TestBuffersShrinkAfterALargeStep(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), Compression: "gzip", Level: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(newRec(1, "gzip"), []byte("h\n")); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 4<<20/17) // 4 MiB, compresses badly enough
	for i := range big {
		big[i] ^= byte(i * 7919 >> 3)
	}
	step := func(rows []byte) {
		t.Helper()
		if err := s.Append(id, rows, 1, 1, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	step(big)
	step([]byte("small\n"))
	f := s.open[id]
	if cap(f.pending) > keepPending || cap(s.scratch) > keepBuffer || s.zbuf.Cap() > keepBuffer {
		t.Fatalf("after a small step: pending %d, scratch %d, gzip %d bytes of capacity", cap(f.pending), cap(s.scratch), s.zbuf.Cap())
	}
}

// Many open staging files hold at most MaxOpenFiles OS handles: each step
// writes to more files than that, yet every file holds exactly its rows,
// also after a recovery.
func TestOpenFilesShareBoundedHandles(t *testing.T) {
	const files, steps, handles = 23, 5, 4
	for _, comp := range []string{"none", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, Compression: comp, Level: 1, MaxOpenFiles: handles}
			s, err := Open(opts, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]state.FileID, files)
			for i := range ids {
				ids[i] = id
				ids[i].Partition = fmt.Sprint(i)
				rec := newRec(1, comp)
				rec.ID, rec.Name = ids[i], Name(ids[i], "w1", 1, comp)
				must(t, s.Create(rec, []byte("a\n")))
			}
			var recs []state.File
			for step := range steps {
				for i := range ids {
					must(t, s.Append(ids[i], []byte(fmt.Sprintf("%d-%d\n", i, step)), 1, 1, 0))
				}
				if recs, err = s.Flush(); err != nil {
					t.Fatal(err)
				}
				if n := s.handles.Len(); n > handles {
					t.Fatalf("step %d: %d OS handles, at most %d", step, n, handles)
				}
			}
			s.Close()
			s, err = Open(opts, recs, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if n := s.handles.Len(); n != 0 {
				t.Fatalf("%d handles open after recovery, want none until a write", n)
			}
			for i, rec := range recs {
				want := "a\n"
				for step := range steps {
					want += fmt.Sprintf("%d-%d\n", i, step)
				}
				if got := readAll(t, s.Path(rec.Name), comp); got != want {
					t.Fatalf("%s: %q, want %q", rec.Name, got, want)
				}
				if _, err := s.Seal(rec.ID); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
