package checkpoint

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"materializer/pipeline/blobstore"
	"materializer/pipeline/compact"
	"materializer/pipeline/engine"
	"materializer/pipeline/files"
	"materializer/state"
)

const testET = "article.updated"

// fixture is a data dir with real state and staging files, shaped the way
// the engine leaves them: one open file with bytes beyond its committed
// length (a step that wrote but did not commit), one sealed file in the
// outbox, cursors, counters, fingerprint and many keys.
type fixture struct {
	t       *testing.T
	root    string
	dataDir string
	db      *state.DB
	staging string
	clock   time.Time
	open    state.File
	sealed  state.Outbox
	nextKey int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{t: t, root: root, dataDir: filepath.Join(root, "data"), clock: time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)}
	f.staging = filepath.Join(f.dataDir, "staging")
	if err := os.MkdirAll(f.staging, 0o750); err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(filepath.Join(f.dataDir, "state"), state.Options{Logger: zerolog.Nop(), MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f.db = db
	t.Cleanup(f.closeDB)
	f.setup()
	return f
}

// closeDB closes the live state (a lost disk, or a stopped daemon).
func (f *fixture) closeDB() {
	if f.db != nil {
		_ = f.db.Close()
		f.db = nil
	}
}

func testTables() []Table {
	return []Table{{Name: "article", Columns: []string{"article_id:int", "version:int"}}}
}

func testEventTypes() []EventType {
	return []EventType{{Name: testET, Fingerprint: engine.Fingerprint([]string{"article_id"}, "version", "number"), Tables: testTables()}}
}

func (f *fixture) setup() {
	w := f.db.WriterID()
	b := f.db.NewBatch()
	defer b.Close()
	b.PutFingerprint(testET, testEventTypes()[0].Fingerprint)
	b.PutSlot(state.Partition{EventType: testET, Partition: "0"}, 1)
	b.PutSlot(state.Partition{EventType: testET, Partition: "1"}, 2)
	b.PutCursor(1, state.Cursor{Offset: "001-0001-000000000000000041", RingHead: 1, RingNext: 2})
	b.PutCounters(testET, state.Counters{Received: 50, Main: 20, Superseded: 10, Duplicate: 5, Correction: 5, Rejected: 2, Open: 8})
	sid := state.FileID{EventType: testET, Table: "article", Kind: "main", Partition: "0"}
	f.sealed = state.Outbox{File: state.File{ID: sid, Seq: 1, Name: files.Name(sid, w, 1, "none"), Writer: w, Length: 12, Compression: "none"},
		Key: "article.updated/article/main/dt=2026-11-05/" + files.Name(sid, w, 1, "none"), Sealed: 1}
	f.write(f.sealed.Name, "sealed-file\n")
	b.PutOutbox(&f.sealed)
	oid := state.FileID{EventType: testET, Table: "article", Kind: "correction", Partition: "0"}
	f.open = state.File{ID: oid, Seq: 7, Name: files.Name(oid, w, 7, "none"), Writer: w, Length: 10, Rows: 2, Compression: "none"}
	f.write(f.open.Name, "committed|garbage") // 10 committed bytes, then a torn step
	b.PutFile(&f.open)
	b.PutNextSeq(oid, 8)
	if err := b.Commit(true); err != nil {
		f.t.Fatal(err)
	}
	f.addKeys(20000)
}

func (f *fixture) write(name, content string) {
	if err := os.WriteFile(filepath.Join(f.staging, name), []byte(content), 0o640); err != nil {
		f.t.Fatal(err)
	}
}

// addKeys writes n more keys and flushes them into a new SST.
func (f *fixture) addKeys(n int) {
	b := f.db.NewBatch()
	defer b.Close()
	for i := 0; i < n; i++ {
		f.nextKey++
		key := compact.AppendKeyPart(nil, []byte(fmt.Sprintf("article-%09d", f.nextKey)))
		b.PutKeyState(1, key, (&compact.KeyState{HasHi: true, Hi: []byte{1, byte(f.nextKey)}, HiEID: []byte("eid"), ClosedAt: 1}).AppendEncoded(nil))
	}
	if err := b.Commit(true); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.Flush(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) now() time.Time { f.clock = f.clock.Add(time.Second); return f.clock }

func (f *fixture) taker(remote *Remote, keep int) *Taker {
	return NewTaker(Options{
		Dir: filepath.Join(f.dataDir, "checkpoints"), StagingDir: f.staging, DB: f.db, EventTypes: testEventTypes(),
		Keep: keep, Remote: remote, Now: f.now, Logger: zerolog.New(zerolog.NewTestWriter(f.t)).Level(zerolog.WarnLevel),
	})
}

func (f *fixture) take(tk *Taker) *Result {
	f.t.Helper()
	res, err := tk.Take(context.Background(), Now)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// fileRemote is a Remote on a file:// directory.
func fileRemote(t *testing.T, dir string, o RemoteOptions) *Remote {
	t.Helper()
	store, err := blobstore.Open(context.Background(), "file://"+dir, blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return NewRemote(store, o)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// stateFiles are the manifest's state/ files ending in suffix.
func stateFiles(m *Manifest, suffix string) map[string]File {
	out := map[string]File{}
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, "state/") && strings.HasSuffix(f.Path, suffix) {
			out[f.Path] = f
		}
	}
	return out
}

func noSkip(t *testing.T) func(Info, error) {
	return func(c Info, err error) { t.Errorf("checkpoint %s skipped: %v", c.ID, err) }
}

func accept(*Manifest) error { return nil }

func equalBytes(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if !bytes.Equal(got, []byte(want)) {
		t.Errorf("%s: %q, want %q", what, got, want)
	}
}
