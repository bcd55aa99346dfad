package state

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"slices"
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
	b.PutSession(7, 100, key, []byte("head|"), []byte(`{"a":1}`))
	b.PutSession(7, -100, []byte("neg"), nil, []byte("n"))
	b.PutSession(7, 300, []byte("late"), nil, []byte("l"))
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
	var due []string
	if err := db.Timers(SessionTimer, 7, math.MinInt64, 100, func(d int64, k, v []byte) (bool, error) {
		due = append(due, fmt.Sprintf("%d %s %s", d, k, v))
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"-100 neg n", `100 k1 head|{"a":1}`}; !slices.Equal(due, want) {
		t.Fatalf("due sessions %q, want %q", due, want)
	}
	if d, ok, _ := db.NextTimer(SessionTimer, 7, math.MinInt64); !ok || d != -100 {
		t.Fatalf("next session %d %v", d, ok)
	}
	if d, ok, _ := db.NextTimer(SessionTimer, 7, 0); !ok || d != 100 {
		t.Fatalf("next session from 0: %d %v", d, ok)
	}
	if d, ok, _ := db.NextTimer(ExpiryTimer, 7, math.MinInt64); !ok || d != 50 {
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
	want := "the data dir holds state format 3, this binary reads formats 1 and 2"
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

// A format-1 data dir (best events and session timers apart) is upgraded:
// each open session becomes one record under its timer's deadline; stale
// timers and orphan best events go; the version becomes 2.
func TestUpgradeFrom1(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	b := db.p.NewBatch()
	set := func(k, v []byte) { _ = b.Set(k, v, nil) }
	set([]byte{tagVersion}, []byte{1})
	for i, k := range []string{"a", "b", "stale"} {
		key := []byte(k)
		set(timerKey(TimerKind(tagSessionV1), 3, int64(100+i), key), nil)
		set(keyStateKey(3, key), []byte("state-"+k))
		if k != "stale" {
			e := enc{}
			e.str("off-" + k)
			e.uvarint(uint64(len("raw-" + k)))
			set(appendRecordKey(nil, tagBestV1, 3, key), append(e.b, "raw-"+k...))
		}
	}
	set(appendRecordKey(nil, tagBestV1, 3, []byte("orphan")), []byte{0, 0})
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openMem(t, fs)
	defer db.Close()
	if db.Format() != 1 {
		t.Fatalf("format %d before the upgrade", db.Format())
	}
	err := db.UpgradeFrom1(func(deadline int64, state []byte, offset string) ([]byte, []byte, bool, error) {
		return append(state, '+'), []byte(fmt.Sprintf("%d,%s|", deadline, offset)), true, nil
	})
	if err != nil || db.Format() != FormatVersion {
		t.Fatalf("upgrade: %v, format %d", err, db.Format())
	}
	var got []string
	_ = db.Timers(SessionTimer, 3, math.MinInt64, math.MaxInt64, func(d int64, k, v []byte) (bool, error) {
		got = append(got, fmt.Sprintf("%d %s %s", d, k, v))
		return true, nil
	})
	if want := []string{"100 a 100,off-a|raw-a", "101 b 101,off-b|raw-b"}; !slices.Equal(got, want) {
		t.Fatalf("sessions %q, want %q", got, want)
	}
	var st []byte
	_, _ = db.KeyState(3, []byte("a"), func(v []byte) error { st = bytes.Clone(v); return nil })
	if string(st) != "state-a+" {
		t.Fatalf("key state %q", st)
	}
	for _, tag := range []byte{tagSessionV1, tagBestV1} {
		_ = db.scan([]byte{tag}, func(k, _ []byte) error { t.Errorf("format-1 record left: %q", k); return nil })
	}
}
