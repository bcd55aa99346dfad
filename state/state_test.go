package state

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func openMem(t *testing.T, fs vfs.FS) *DB {
	t.Helper()
	db, err := Open("db", Options{FS: fs, CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestRoundTrips(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	writer := db.WriterID()
	if len(writer) != 12 {
		t.Fatalf("writer id %q", writer)
	}
	b := db.NewBatch()
	b.PutSlot(Partition{"a.b", "3"}, 7)
	st := []byte("an opaque key state")
	key := []byte("k1")
	b.PutKeyState(7, key, st)
	b.PutBest(7, key, "001-0001-000000000000000010", []byte(`{"a":1}`))
	b.PutTimer(SessionTimer, 7, 100, key)
	b.PutTimer(SessionTimer, 7, -100, []byte("neg"))
	b.PutTimer(SessionTimer, 7, 300, []byte("late"))
	b.PutTimer(ExpiryTimer, 7, 50, key)
	b.PutCursor(7, Cursor{Offset: "x", RingHead: 2, RingNext: 4})
	b.PutRing(7, RingEntry{Seq: 2, Offset: "a", Count: 5, FirstEID: "e"})
	b.PutRing(7, RingEntry{Seq: 3, Offset: "b", Count: 6})
	b.PutCounters("a.b", Counters{Received: 10, Main: 3, Open: 7})
	id := FileID{"a.b", "t", "main", "3"}
	f := File{ID: id, Seq: 4, Name: "n", Length: 99, Rows: 3, Events: 2, Created: 1, Header: true, Compression: "gzip", Columns: []Column{{"a", "int"}}}
	b.PutFile(&f)
	b.PutNextSeq(id, 5)
	b.PutOutbox(&Outbox{File: f, Key: "k", Sealed: 9, Uploaded: true, SHA256: "ab", Bytes: 99})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openMem(t, fs)
	defer db.Close()
	if db.WriterID() != writer {
		t.Fatal("writer id changed on reopen")
	}
	slots, next, err := db.Slots()
	if err != nil || slots[Partition{"a.b", "3"}] != 7 || next != 8 {
		t.Fatalf("slots %v next %d err %v", slots, next, err)
	}
	var got []byte
	if ok, err := db.KeyState(7, key, func(v []byte) error { got = bytes.Clone(v); return nil }); !ok || err != nil || !bytes.Equal(got, st) {
		t.Fatalf("key state %q %v %v", got, ok, err)
	}
	if off, raw, err := db.Best(7, key); err != nil || off != "001-0001-000000000000000010" || string(raw) != `{"a":1}` {
		t.Fatalf("best %q %q %v", off, raw, err)
	}
	var deadlines []int64
	if err := db.Timers(SessionTimer, 7, 100, func(d int64, k []byte) (bool, error) {
		deadlines = append(deadlines, d)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(deadlines) != 2 || deadlines[0] != -100 || deadlines[1] != 100 {
		t.Fatalf("due timers %v", deadlines)
	}
	if d, ok, _ := db.NextTimer(ExpiryTimer, 7); !ok || d != 50 {
		t.Fatalf("next expiry %d %v", d, ok)
	}
	if c, _ := db.Cursor(7); c.Offset != "x" || c.RingNext != 4 {
		t.Fatalf("cursor %+v", c)
	}
	if r, _ := db.Ring(7); len(r) != 2 || r[1].Count != 6 || r[0].FirstEID != "e" {
		t.Fatalf("ring %+v", r)
	}
	if c, _ := db.Counters("a.b"); !c.Balanced() || c.Received != 10 {
		t.Fatalf("counters %+v", c)
	}
	if fs, _ := db.Files(); len(fs) != 1 || fs[0].ID != id || fs[0].Columns[0].Type != "int" || fs[0].Length != 99 {
		t.Fatalf("files %+v", fs)
	}
	if s, _ := db.NextSeq(id); s != 5 {
		t.Fatalf("next seq %d", s)
	}
	if o, _ := db.Outbox(); len(o) != 1 || o[0].SHA256 != "ab" || o[0].File.Seq != 4 {
		t.Fatalf("outbox %+v", o)
	}
	b = db.NewBatch()
	b.DeleteRingBefore(7, 3)
	b.DeleteOutbox(id, 4)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.Ring(7); len(r) != 1 || r[0].Seq != 3 {
		t.Fatalf("ring after delete %+v", r)
	}
	if o, _ := db.Outbox(); len(o) != 0 {
		t.Fatalf("outbox after delete %+v", o)
	}
}

func TestRefusesOtherFormat(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	if err := db.p.Set([]byte{tagVersion}, []byte{FormatVersion + 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open("db", Options{FS: fs})
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("want ErrFormat, got %v", err)
	}
	want := "the data dir holds state format 2, this binary reads format 1"
	if !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("message %q does not name both versions", err)
	}
}

// The bottom layer imports nothing from pipeline/ (its packages depend on
// it, never the other way round).
func TestImportsNoPipelinePackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "materializer/pipeline") {
			t.Errorf("state depends on %s", dep)
		}
	}
}
