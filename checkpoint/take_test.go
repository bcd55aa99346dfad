package checkpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"materializer/internal/datadir"
	"materializer/pipeline/files"
	"materializer/state"
)

// A checkpoint holds exactly the committed state: the open file cut to its
// committed length, the sealed file whole, the cursors, counters and
// fingerprint; a restore onto another path gives the state a new writer id,
// renames the open file for it and leaves the pending cursor reset marked.
func TestTakeAndRestore(t *testing.T) {
	f := newFixture(t)
	res := f.take(f.taker(nil, 2))
	m, err := readManifest(res.Location)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pause <= 0 || m.PauseNanos != res.Pause.Nanoseconds() || m.Writer != f.db.WriterID() {
		t.Errorf("pause %v manifest pause %d writer %s", res.Pause, m.PauseNanos, m.Writer)
	}
	if len(m.Staging.Open) != 1 || m.Staging.Open[0] != (StagedFile{f.open.Name, 10}) ||
		len(m.Staging.Sealed) != 1 || m.Staging.Sealed[0] != f.sealed.Name || len(m.Staging.Delivered) != 0 {
		t.Errorf("staging %+v", m.Staging)
	}
	equalBytes(t, "open file in the checkpoint", mustRead(t, filepath.Join(res.Location, "staging", f.open.Name)), "committed|")
	if want := []Cursor{{testET, "0", "001-0001-000000000000000041"}}; len(m.Cursors) != 1 || m.Cursors[0] != want[0] {
		t.Errorf("cursors %v, want %v", m.Cursors, want) // partition 1 has a slot but nothing applied
	}
	et, _ := m.EventType(testET)
	if et.Fingerprint != testEventTypes()[0].Fingerprint || et.Counters.Received != 50 || !et.Counters.Balanced() {
		t.Errorf("event type %+v", et)
	}
	if len(stateFiles(m, ".sst")) == 0 {
		t.Errorf("no SST in the manifest: %v", m.Files)
	}
	// The live file goes on growing; the checkpoint does not.
	f.write(f.open.Name, "committed|more rows")

	target := filepath.Join(f.root, "elsewhere", "data")
	st, err := Source{LocalDir: filepath.Join(f.dataDir, "checkpoints")}.Stage(context.Background(), "latest", target, f.now(), accept, noSkip(t))
	if err != nil {
		t.Fatal(err)
	}
	prep, err := st.Prepare("0000feedbeef")
	if err != nil {
		t.Fatal(err)
	}
	aside, err := st.SwapIn(target, &Pending{Checkpoint: m.ID}, f.now())
	st.Release()
	if err != nil || aside != "" {
		t.Fatalf("swap: aside %q, %v", aside, err)
	}
	newName := files.Name(f.open.ID, "0000feedbeef", 7, "none")
	if prep.Renamed[f.open.Name] != newName {
		t.Errorf("renamed %v", prep.Renamed)
	}
	equalBytes(t, "restored open file", mustRead(t, filepath.Join(target, "staging", newName)), "committed|")
	equalBytes(t, "restored sealed file", mustRead(t, filepath.Join(target, "staging", f.sealed.Name)), "sealed-file\n")
	db, err := state.Open(filepath.Join(target, "state"), state.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	open, _ := db.Files()
	outbox, _ := db.Outbox()
	if db.WriterID() != "0000feedbeef" || len(open) != 1 || open[0].Name != newName || open[0].Writer != "0000feedbeef" ||
		open[0].Length != 10 || len(outbox) != 1 || outbox[0].Key != f.sealed.Key {
		t.Errorf("restored state: writer %s open %+v outbox %+v", db.WriterID(), open, outbox)
	}
	if seq, _ := db.NextSeq(f.open.ID); seq != 8 {
		t.Errorf("next seq %d, want 8 (numbering goes on under the new writer)", seq)
	}
	if err := CheckNoPending(target); !errors.Is(err, ErrRestorePending) {
		t.Errorf("pending marker: %v", err)
	}
	if p, err := ReadPending(target); err != nil || p.Checkpoint != m.ID {
		t.Errorf("pending %+v %v", p, err)
	}
	if err := ClearPending(target); err != nil || CheckNoPending(target) != nil {
		t.Errorf("clear pending: %v", err)
	}
}

// Restoring over an existing data dir keeps it aside, whole, and carries its
// local checkpoints over.
func TestRestoreKeepsOldDataDirAside(t *testing.T) {
	f := newFixture(t)
	res := f.take(f.taker(nil, 2))
	f.closeDB()
	lock, err := datadir.Existing(f.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	st, err := Source{LocalDir: filepath.Join(f.dataDir, "checkpoints")}.Stage(context.Background(), res.ID, f.dataDir, f.now(), accept, noSkip(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Prepare(state.NewWriterID()); err != nil {
		t.Fatal(err)
	}
	aside, err := st.SwapIn(f.dataDir, &Pending{}, f.now())
	st.Release()
	if err != nil || !strings.HasPrefix(aside, f.dataDir+".before-restore-") {
		t.Fatalf("aside %q: %v", aside, err)
	}
	equalBytes(t, "old data dir's open file", mustRead(t, filepath.Join(aside, "staging", f.open.Name)), "committed|garbage")
	local, _ := ListLocal(filepath.Join(f.dataDir, "checkpoints"))
	if len(local) != 1 || local[0].ID != res.ID || local[0].Invalid != "" {
		t.Errorf("local checkpoints after the restore: %+v", local)
	}
}

// A checkpoint's outbox entry whose file is gone (delivered and removed
// while the checkpoint was taken) is listed as delivered, and a restore
// drops the entry instead of failing on the missing file.
func TestDeliveredDuringCheckpoint(t *testing.T) {
	f := newFixture(t)
	if err := os.Remove(filepath.Join(f.staging, f.sealed.Name)); err != nil {
		t.Fatal(err)
	}
	res := f.take(f.taker(nil, 1))
	m, _ := readManifest(res.Location)
	if len(m.Staging.Sealed) != 0 || len(m.Staging.Delivered) != 1 {
		t.Fatalf("staging %+v", m.Staging)
	}
	st, err := Source{LocalDir: filepath.Join(f.dataDir, "checkpoints")}.Stage(context.Background(), "latest",
		filepath.Join(f.root, "r"), f.now(), accept, noSkip(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Discard()
	prep, err := st.Prepare(state.NewWriterID())
	if err != nil || len(prep.Delivered) != 1 {
		t.Fatalf("prepare %+v: %v", prep, err)
	}
}

// The pause: Take must run the hard links and Pebble's checkpoint inside
// quiesce, and the flush before it.
func TestTakeRunsSnapshotInsideQuiesce(t *testing.T) {
	f := newFixture(t)
	tk := f.taker(nil, 1)
	calls := 0
	res, err := tk.Take(context.Background(), func(ctx context.Context, fn func() error) error {
		calls++
		entries, _ := os.ReadDir(filepath.Join(f.dataDir, "checkpoints"))
		if len(entries) != 1 {
			t.Errorf("checkpoint dir not prepared before the pause: %v", entries)
		}
		if _, err := os.Stat(filepath.Join(f.dataDir, "checkpoints", entries[0].Name(), "state")); err == nil {
			t.Error("state copied before the pause")
		}
		return fn()
	})
	if err != nil || calls != 1 {
		t.Fatalf("calls %d: %v", calls, err)
	}
	if _, err := os.Stat(filepath.Join(res.Location, ManifestName)); err != nil {
		t.Fatal(err)
	}
	// A failing quiesce (engine stopped) leaves nothing behind.
	if _, err := tk.Take(context.Background(), func(context.Context, func() error) error { return context.Canceled }); !errors.Is(err, context.Canceled) {
		t.Fatalf("take with a failing quiesce: %v", err)
	}
	if local, _ := ListLocal(filepath.Join(f.dataDir, "checkpoints")); len(local) != 1 {
		t.Errorf("local checkpoints after a failed take: %+v", local)
	}
}

// Steps the writer commits between the pause and Pebble's checkpoint: the
// checkpoint holds the later state, with its files. A file sealed since
// keeps the open link's (complete) content; an outbox file delivered since
// is dropped; an open file that is gone before it could be linked makes
// the take start over; a file opened after the pause is linked late.
func TestStateMovesBetweenPauseAndCheckpoint(t *testing.T) {
	f := newFixture(t)
	tk := f.taker(nil, 3)
	w := f.db.WriterID()
	id := state.FileID{EventType: testET, Table: "article", Kind: "rejected", Partition: "1"}
	file := func(seq uint64) state.File {
		return state.File{ID: id, Seq: seq, Name: files.Name(id, w, seq, "none"), Writer: w, Length: 4, Compression: "none"}
	}
	commit := func(fn func(b *state.Batch)) {
		b := f.db.NewBatch()
		defer b.Close()
		fn(b)
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	res, err := tk.Take(context.Background(), func(_ context.Context, fn func() error) error {
		calls++
		if calls == 2 { // the vanished file was sealed and delivered meanwhile
			commit(func(b *state.Batch) { b.DeleteFile(id) })
		}
		if err := fn(); err != nil {
			return err
		}
		if calls == 2 { // a new file opens after the pause
			next := file(2)
			f.write(next.Name, "new\n")
			commit(func(b *state.Batch) { b.PutFile(&next) })
			return nil
		}
		// After the first pause: the open file is sealed with a row more,
		// the fixture's sealed file is delivered, and a new file opens whose
		// file is gone before the checkpoint can link it.
		f.write(f.open.Name, "committed|row\n")
		sealed := state.Outbox{File: f.open, Key: "k/" + f.open.Name, Sealed: 2}
		sealed.Length = 14
		gone := file(1)
		commit(func(b *state.Batch) {
			b.DeleteFile(f.open.ID)
			b.PutOutbox(&sealed)
			b.DeleteOutbox(f.sealed.ID, f.sealed.Seq)
			b.PutFile(&gone)
		})
		return os.Remove(filepath.Join(f.staging, f.sealed.Name))
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("%d attempts, want a second one after the vanished file", calls)
	}
	m, _ := readManifest(res.Location)
	late := file(2).Name
	if len(m.Staging.Open) != 1 || m.Staging.Open[0].Name != late || len(m.Staging.Sealed) != 1 ||
		m.Staging.Sealed[0] != f.open.Name || len(m.Staging.Delivered) != 0 {
		t.Errorf("staging %+v", m.Staging)
	}
	equalBytes(t, "file opened after the pause", mustRead(t, filepath.Join(res.Location, "staging", late)), "new\n")
	equalBytes(t, "file sealed after the pause", mustRead(t, filepath.Join(res.Location, "staging", f.open.Name)), "committed|row\n")
	if entries, _ := os.ReadDir(filepath.Join(res.Location, "staging")); len(entries) != 2 {
		t.Errorf("staging files %v, want the two the state names", entries)
	}
}

// keep applies locally; hashes of SSTs shared with the previous checkpoint
// (hard links of one file) are reused, new ones are computed.
func TestKeepAndHashReuse(t *testing.T) {
	f := newFixture(t)
	tk := f.taker(nil, 2)
	var ids []string
	var prev *Manifest
	for i := 0; i < 4; i++ {
		res := f.take(tk)
		ids = append(ids, res.ID)
		m, _ := readManifest(res.Location)
		if prev != nil {
			for p, sf := range stateFiles(prev, ".sst") {
				if got, ok := stateFiles(m, ".sst")[p]; ok && got != sf {
					t.Errorf("%s: %+v then %+v", p, sf, got)
				}
			}
		}
		prev = m
		f.addKeys(5000)
	}
	// SSTs the previous checkpoint has too are not read again.
	res := f.take(tk)
	m, _ := readManifest(res.Location)
	var shared int64
	for p, sf := range stateFiles(m, ".sst") {
		if prev := stateFiles(prev, ".sst")[p]; prev == sf {
			shared += sf.Size
		}
	}
	if shared == 0 || res.Hashed > res.Size-shared {
		t.Errorf("hashed %d of %d bytes, %d of them in SSTs shared with the previous checkpoint: those were read again",
			res.Hashed, res.Size, shared)
	}
	ids = append(ids[1:], res.ID)
	local, _ := ListLocal(filepath.Join(f.dataDir, "checkpoints"))
	if len(local) != 2 || local[0].ID != ids[3] || local[1].ID != ids[2] {
		t.Errorf("kept %+v, want the newest two of %v", local, ids)
	}
	// Every reused hash is right.
	for _, c := range local {
		m, _ := readManifest(c.Location)
		for _, file := range m.Files {
			_, sum, err := hashFile(filepath.Join(c.Location, file.Path))
			if err != nil || sum != file.SHA256 {
				t.Errorf("%s %s: sha256 %s, manifest %s", c.ID, file.Path, sum, file.SHA256)
			}
		}
	}
}

// Partial and corrupt checkpoints are skipped by `latest` with a message
// naming the problem; an unfinished one (no manifest) is removed by the next
// take.
func TestCorruptAndPartialCheckpointsSkipped(t *testing.T) {
	f := newFixture(t)
	tk := f.taker(nil, 5)
	good := f.take(tk)
	f.addKeys(1000)
	corrupt := f.take(tk)
	f.addKeys(1000)
	truncated := f.take(tk)
	f.addKeys(1000)
	partial := f.take(tk)

	cm, _ := readManifest(corrupt.Location)
	flipByte(t, filepath.Join(corrupt.Location, "staging", f.open.Name)) // same size, other bytes
	tm, _ := readManifest(truncated.Location)
	for _, sf := range stateFiles(tm, ".sst") {
		path := filepath.Join(truncated.Location, sf.Path)
		replaceFile(t, path, mustRead(t, path)[:sf.Size-1])
		break
	}
	if err := os.Remove(filepath.Join(partial.Location, ManifestName)); err != nil {
		t.Fatal(err)
	}
	skipped := map[string]string{}
	st, err := Source{LocalDir: filepath.Join(f.dataDir, "checkpoints")}.Stage(context.Background(), "latest",
		filepath.Join(f.root, "r"), f.now(), accept, func(c Info, err error) { skipped[c.ID] = err.Error() })
	if err != nil {
		t.Fatalf("%v; skipped %v", err, skipped)
	}
	defer st.Discard()
	if st.From.ID != good.ID {
		t.Errorf("restored %s, want the only good one %s", st.From.ID, good.ID)
	}
	for id, want := range map[string]string{
		partial.ID: "has no manifest", truncated.ID: "bytes, the manifest says",
		corrupt.ID: "staging/" + f.open.Name + " has sha256",
	} {
		if !strings.Contains(skipped[id], want) {
			t.Errorf("skipped %s: %q, want it to say %q", id, skipped[id], want)
		}
	}
	if len(cm.Files) == 0 {
		t.Fatal("empty manifest")
	}
	if _, err := (Source{LocalDir: filepath.Join(f.dataDir, "checkpoints")}).Stage(context.Background(), corrupt.ID,
		filepath.Join(f.root, "r2"), f.now(), accept, func(Info, error) {}); !errors.Is(err, ErrNotFound) {
		t.Errorf("restore of the corrupt one by id: %v", err)
	}
	f.take(tk)
	if _, err := os.Stat(partial.Location); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unfinished checkpoint not cleaned: %v", err)
	}
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	data := mustRead(t, path)
	data[0] ^= 0xff
	replaceFile(t, path, data)
}

// replaceFile writes a new file in place of path: checkpoint files may be
// hard links shared with the live state, which must stay intact.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
}
