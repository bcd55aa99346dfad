package outbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"materializer/internal/natstest"
	"materializer/pipeline/blobstore"
	"materializer/pipeline/notify"
	"materializer/pipeline/outbox"
	"materializer/state"
)

// rig is an outbox over a real state DB, a file:// store and an in-process
// JetStream.
type rig struct {
	db      *state.DB
	staging string
	storage string
	nats    *natstest.Server
	pub     *notify.Publisher
	box     *outbox.Outbox
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{staging: filepath.Join(dir, "staging"), storage: filepath.Join(dir, "storage"), nats: natstest.Start(t)}
	if err := os.MkdirAll(r.staging, 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(filepath.Join(dir, "state"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r.db = db
	ctx := context.Background()
	store, err := blobstore.Open(ctx, "file://"+r.storage, blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.pub, err = notify.Connect(ctx, notify.Options{URLs: r.nats.URL(), AckTimeout: time.Second, PublishAttempts: 1, ReconnectMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.pub.Close)
	if err := r.pub.EnsureStream(ctx); err != nil {
		t.Fatal(err)
	}
	r.box = outbox.New(outbox.Options{
		DB: db, StagingDir: r.staging, Store: store, Announcer: r.pub, Concurrency: 8,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: zerolog.Nop(),
	})
	return r
}

// seal writes files sealed files of streams file streams, as the engine
// leaves them: staging files and their outbox entries, committed together.
func (r *rig) seal(t *testing.T, streams, files int) (keys []string) {
	t.Helper()
	b := r.db.NewBatch()
	defer b.Close()
	sealed := time.Now().UnixNano()
	for f := 1; f <= files; f++ {
		for s := range streams {
			id := state.FileID{EventType: fmt.Sprintf("shop%03d.article", s), Table: "article", Kind: "main", Partition: "0"}
			name := fmt.Sprintf("%s.p0.w.%010d.csv", id.EventType, f)
			body := fmt.Sprintf("article_id\n%d\n", f)
			if err := os.WriteFile(filepath.Join(r.staging, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			sealed++ // a later stream's first file is sealed after an earlier one's last
			key := id.EventType + "/" + name
			keys = append(keys, key)
			b.PutOutbox(&state.Outbox{
				File: state.File{ID: id, Seq: uint64(f), Name: name, Writer: "w", Length: int64(len(body)), Rows: 1, Events: 1, Header: true, Compression: "none"},
				Key:  key, Sealed: sealed,
			})
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return keys
}

// notices reads every notice in the stream, in stream order.
func (r *rig) notices(t *testing.T) []notify.Notice {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(r.nats.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, notify.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []notify.Notice
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		n, err := notify.ParseNotice(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func (r *rig) run(t *testing.T) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.box.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	r.box.Wake()
	return cancel
}

// checkDelivered: every file announced once, each stream's in sequence;
// the outbox and the staging directory empty.
func (r *rig) checkDelivered(t *testing.T, streams, files int) {
	t.Helper()
	next := map[string]uint64{}
	for _, n := range r.notices(t) {
		if want := next[n.EventType] + 1; n.Seq != want {
			t.Fatalf("%s: notice of seq %d, want %d (each stream in sequence, once)", n.EventType, n.Seq, want)
		}
		next[n.EventType] = n.Seq
	}
	if len(next) != streams {
		t.Fatalf("notices of %d streams, want %d", len(next), streams)
	}
	for s, seq := range next {
		if seq != uint64(files) {
			t.Fatalf("%s: last notice seq %d, want %d", s, seq, files)
		}
	}
	if left, err := r.db.Outbox(); err != nil || len(left) != 0 {
		t.Fatalf("outbox after delivery: %d entries, %v", len(left), err)
	}
	if left, _ := os.ReadDir(r.staging); len(left) != 0 {
		t.Fatalf("%d staging files left", len(left))
	}
	if s := r.box.Status(); s.PendingFiles != 0 || s.PendingBytes != 0 || r.box.StagedBytes() != 0 {
		t.Fatalf("status after delivery: %+v, staged %d", s, r.box.StagedBytes())
	}
}

// TestDeliversEveryStreamInSequence: many streams of several files each
// (a flush of many event types) are all stored and announced, each stream's
// notices in sequence.
func TestDeliversEveryStreamInSequence(t *testing.T) {
	const streams, files = 200, 5
	r := newRig(t)
	keys := r.seal(t, streams, files)
	r.run(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.box.Wait(ctx, "", keys); err != nil {
		t.Fatalf("%v; %+v", err, r.box.Status())
	}
	r.checkDelivered(t, streams, files)
}

// TestNATSDownKeepsEverything: with NATS down files are stored but nothing
// leaves the outbox; once NATS is back every notice goes out, in sequence.
func TestNATSDownKeepsEverything(t *testing.T) {
	const streams, files = 20, 3
	r := newRig(t)
	r.nats.Shutdown()
	keys := r.seal(t, streams, files)
	r.run(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := r.box.Status()
		if s.Uploaded == streams*files && s.Failing > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with NATS down: %+v, want every file stored and notices failing", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if left, err := r.db.Outbox(); err != nil || len(left) != streams*files {
		t.Fatalf("outbox with NATS down: %d entries, %v; want all %d", len(left), err, streams*files)
	}
	r.nats.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.box.Wait(ctx, "", keys); err != nil {
		t.Fatal(err)
	}
	r.checkDelivered(t, streams, files)
}

// TestRestartAnnouncesStoredFiles: a deliverer that stops after storing
// files (its notices not sent) leaves them in the outbox, and the next one
// announces them.
func TestRestartAnnouncesStoredFiles(t *testing.T) {
	const streams, files = 10, 2
	r := newRig(t)
	r.nats.Shutdown()
	keys := r.seal(t, streams, files)
	stop := r.run(t)
	deadline := time.Now().Add(30 * time.Second)
	for r.box.Status().Uploaded != streams*files {
		if time.Now().After(deadline) {
			t.Fatalf("files not stored: %+v", r.box.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	r.nats.Restart()
	store, err := blobstore.Open(context.Background(), "file://"+r.storage, blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.box = outbox.New(outbox.Options{DB: r.db, StagingDir: r.staging, Store: store, Announcer: r.pub, Logger: zerolog.Nop()})
	r.run(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.box.Wait(ctx, "", keys); err != nil {
		t.Fatal(err)
	}
	r.checkDelivered(t, streams, files)
}
