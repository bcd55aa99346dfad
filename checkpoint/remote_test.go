package checkpoint

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"materializer/internal/s3test"
	"materializer/pipeline/blobstore"
	"materializer/state"
)

// s3Remote is a Remote on an S3-compatible server.
func s3Remote(t *testing.T, srv s3test.Server, prefix string, o RemoteOptions) *Remote {
	t.Helper()
	id, secret := srv.CredFiles(t)
	store, err := blobstore.Open(context.Background(), srv.URL(prefix), blobstore.Options{
		Endpoint: srv.Endpoint, AccessKeyIDFile: id, SecretAccessKeyFile: secret, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewRemote(store, o)
}

// newObjects returns the manifest's objects that prev does not have.
func newObjects(prev, m *Manifest) map[string]File {
	had := map[string]bool{}
	if prev != nil {
		for _, f := range prev.Files {
			had[f.SHA256] = true
		}
	}
	out := map[string]File{}
	for _, f := range m.Files {
		if !had[f.SHA256] {
			out[f.SHA256] = f
		}
	}
	return out
}

// Each upload sends only the objects the store lacks: after the first, the
// new SSTs (from new keys) and the few small files that change (Pebble's
// MANIFEST and WAL, the open staging file); SSTs already there are never
// sent again. The PUTs the S3 server sees are counted.
func TestIncrementalUpload(t *testing.T) {
	fake := s3test.StartFake(t)
	remote := s3Remote(t, fake.Server, "ckpt", RemoteOptions{})
	f := newFixture(t)
	tk := f.taker(remote, 10)
	puts := func() int {
		return fake.Count(func(r s3test.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.Path, "/ckpt/objects/")
		})
	}
	var prev *Manifest
	for round := 0; round < 3; round++ {
		before := puts()
		res := f.take(tk)
		if res.RemoteError != "" {
			t.Fatal(res.RemoteError)
		}
		m, _ := readManifest(res.Location)
		want := newObjects(prev, m)
		var wantBytes int64
		newSSTs := 0
		for _, o := range want {
			wantBytes += o.Size
			if strings.HasSuffix(o.Path, ".sst") {
				newSSTs++
			}
		}
		if got := puts() - before; got != len(want) || res.Upload.Uploaded != len(want) {
			t.Errorf("round %d: %d object PUTs, stats %+v; want %d new objects", round, got, res.Upload, len(want))
		}
		if res.Upload.Bytes < wantBytes || res.Upload.Skipped != res.Upload.Files-len(want) {
			t.Errorf("round %d: stats %+v; want %d bytes of objects", round, res.Upload, wantBytes)
		}
		if prev != nil {
			for p, sf := range stateFiles(m, ".sst") {
				if old, ok := stateFiles(prev, ".sst")[p]; ok && old == sf && want[sf.SHA256].Path != "" {
					t.Errorf("round %d: %s was uploaded again", round, p)
				}
			}
			if newSSTs == 0 {
				t.Errorf("round %d: no new SST uploaded although keys were added", round)
			}
		}
		t.Logf("round %d: %d of %d objects uploaded (%d new SSTs), %d bytes", round, res.Upload.Uploaded, res.Upload.Files, newSSTs, res.Upload.Bytes)
		prev = m
		f.addKeys(3000)
	}
	list, err := remote.List(context.Background())
	if err != nil || len(list) != 3 || list[0].Invalid != "" {
		t.Fatalf("remote list %+v: %v", list, err)
	}
}

// keep applies remotely: older manifests go, and with them the objects no
// kept checkpoint names; garbage of a half-finished upload (objects without
// a manifest) goes once older than the grace period, not before.
func TestRemotePrune(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	remote := fileRemote(t, dir, RemoteOptions{Grace: time.Hour, Now: func() time.Time { return now }})
	f := newFixture(t)
	tk := f.taker(remote, 2)
	for i := 0; i < 4; i++ {
		if res := f.take(tk); res.RemoteError != "" {
			t.Fatal(res.RemoteError)
		}
		f.addKeys(2000)
	}
	garbage := filepath.Join(dir, "objects", strings.Repeat("ab", 32))
	if err := os.WriteFile(garbage, []byte("half an upload"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	list, _ := remote.List(ctx)
	if len(list) != 2 {
		t.Fatalf("remote checkpoints %+v, want 2", list)
	}
	if _, err := remote.Prune(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if list, _ = remote.List(ctx); len(list) != 2 || list[0].Invalid != "" || list[1].Invalid != "" {
		t.Fatalf("kept checkpoints lost objects: %+v", list)
	}
	if _, err := os.Stat(garbage); err != nil {
		t.Fatal("fresh garbage removed before the grace period")
	}
	now = now.Add(2 * time.Hour)
	st, err := remote.Prune(ctx, 2)
	if err != nil || st.Objects == 0 {
		t.Fatalf("prune after the grace period: %+v %v", st, err)
	}
	if _, err := os.Stat(garbage); !os.IsNotExist(err) {
		t.Errorf("garbage left: %v", err)
	}
	checkReferenced(t, remote, dir)
}

// checkReferenced asserts that every object is named by a manifest and
// every named object exists.
func checkReferenced(t *testing.T, remote *Remote, dir string) {
	t.Helper()
	list, _ := remote.List(context.Background())
	named := map[string]bool{}
	for _, c := range list {
		if c.Invalid != "" {
			t.Errorf("remote %s invalid: %s", c.ID, c.Invalid)
		}
		m, _ := remote.Manifest(context.Background(), c.ID)
		for _, f := range m.Files {
			named[f.SHA256] = true
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "objects"))
	for _, e := range entries {
		if !named[e.Name()] && !strings.HasPrefix(e.Name(), "abab") {
			t.Errorf("object %s is named by no kept checkpoint", e.Name())
		}
	}
}

// A remote checkpoint with a corrupt or missing object is skipped by
// `latest` (with the reason), and the data dir is not needed for any of it.
func TestRemoteCorruptSkipped(t *testing.T) {
	dir := t.TempDir()
	remote := fileRemote(t, dir, RemoteOptions{})
	f := newFixture(t)
	tk := f.taker(remote, 5)
	good := f.take(tk)
	f.write(f.open.Name, "COMMITTED|") // a different open file: a new object
	bad := f.take(tk)
	f.write(f.open.Name, "cOMMITTED|")
	missing := f.take(tk)
	bm, _ := remote.Manifest(context.Background(), bad.ID)
	mm, _ := remote.Manifest(context.Background(), missing.ID)
	for _, file := range bm.Files {
		if file.Path == "staging/"+f.open.Name {
			flipByte(t, filepath.Join(dir, "objects", file.SHA256))
		}
	}
	for _, file := range mm.Files {
		if file.Path == "staging/"+f.open.Name {
			if err := os.Remove(filepath.Join(dir, "objects", file.SHA256)); err != nil {
				t.Fatal(err)
			}
		}
	}
	skipped := map[string]string{}
	src := Source{LocalDir: filepath.Join(f.root, "gone", "checkpoints"), Remote: remote}
	st, err := src.Stage(context.Background(), "latest", filepath.Join(f.root, "gone"), f.now(), accept,
		func(c Info, err error) { skipped[c.ID] = err.Error() })
	if err != nil {
		t.Fatalf("%v (skipped %v)", err, skipped)
	}
	defer st.Discard()
	if st.From.ID != good.ID || st.From.Where != "remote" {
		t.Errorf("restored %+v, want remote %s", st.From, good.ID)
	}
	if !strings.Contains(skipped[bad.ID], "has sha256") || !strings.Contains(skipped[missing.ID], "is missing") {
		t.Errorf("skipped %v", skipped)
	}
}

// The remote restore against a real S3 gateway: the data dir is lost, the
// newest checkpoint comes back from versitygw, byte for byte.
func TestRemoteRestoreVersity(t *testing.T) {
	v := s3test.StartVersity(t)
	remote := s3Remote(t, v.Server, "materializer/checkpoints", RemoteOptions{})
	f := newFixture(t)
	tk := f.taker(remote, 2)
	f.take(tk)
	f.addKeys(4000)
	res := f.take(tk)
	if res.RemoteError != "" {
		t.Fatal(res.RemoteError)
	}
	local, _ := readManifest(res.Location)
	f.closeDB()
	if err := os.RemoveAll(f.dataDir); err != nil { // the disk is lost
		t.Fatal(err)
	}
	src := Source{LocalDir: filepath.Join(f.dataDir, "checkpoints"), Remote: remote}
	list, err := src.List(context.Background())
	if err != nil || len(list) != 2 || list[0].ID != res.ID || list[0].Where != "remote" {
		t.Fatalf("list with the data dir gone: %+v %v", list, err)
	}
	st, err := src.Stage(context.Background(), "latest", f.dataDir, f.now(), accept, noSkip(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Prepare(state.NewWriterID()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SwapIn(f.dataDir, &Pending{Checkpoint: res.ID}, f.now()); err != nil {
		t.Fatal(err)
	}
	st.Release()
	db, err := state.Open(filepath.Join(f.dataDir, "state"), state.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	if err := db.Keys(1, func(_, _ []byte) error { n++; return nil }); err != nil || n != f.nextKey {
		t.Errorf("restored %d keys, want %d (%v)", n, f.nextKey, err)
	}
	c, _ := db.Counters(testET)
	et, _ := local.EventType(testET)
	if c != et.Counters {
		t.Errorf("counters %+v, want %+v", c, et.Counters)
	}
}
