package load_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/internal/pgtest"
	"materializer/internal/s3test"
	"materializer/pipeline/blobstore"
	"materializer/pipeline/load"
	"materializer/pipeline/notify"
)

// rig is the loader's outside world: PostgreSQL 15, NATS with the notice
// stream, and a store (file:// or gofakes3) that the test puts files in
// and announces them itself, in the order a test needs.
type rig struct {
	t     testing.TB
	pg    *pgtest.Cluster
	ns    *natstest.Server
	js    jetstream.JetStream
	store blobstore.Store
	fake  *s3test.Fake // nil for file://
	root  string       // the file:// root
	cfg   *conf.Config
	dsn   string
}

// loadTypeTOML is the article event type of the loader's tests and a
// second one ordered by arrival.
var loadTypeTOML = e2etest.LoadedArticleTOML + `
[[event_types]]
name          = "order.created"
partition_key = ["order_number"]
ordering      = "arrival"
session_gap   = "1h"
session_max   = "2h"
  [[event_types.tables]]
  name    = "order"
  columns = [
    { name = "order_number", path = "order_number" },
    { name = "status",       path = "status" },
    { name = "offset",       source = "offset" },
  ]
`

func newRig(t testing.TB, s3 bool, loadKeys string) *rig {
	t.Helper()
	r := &rig{t: t, pg: pgtest.Start(t), ns: natstest.Start(t), root: t.TempDir()}
	storage := fmt.Sprintf("url = %q", "file://"+r.root)
	if s3 {
		r.fake = s3test.StartFake(t)
		id, secret := r.fake.CredFiles(t)
		storage = fmt.Sprintf("url = %q\nendpoint = %q\naccess_key_id_file = %q\nsecret_access_key_file = %q",
			r.fake.URL("dwh"), r.fake.Endpoint, id, secret)
	}
	text := fmt.Sprintf("[nakadi]\nowning_application = \"t\"\n[storage]\n%s\n[notify]\nnats_url = %q\n[load]\ndsn_file = \"/unused\"\n%s\n%s",
		storage, r.ns.URL(), loadKeys, loadTypeTOML)
	cfg, err := conf.Parse([]byte(text), conf.ForLoad)
	if err != nil {
		t.Fatal(err)
	}
	r.cfg, r.dsn = cfg, r.pg.ConnString()
	r.store, err = blobstore.Open(context.Background(), cfg.Storage.URL, blobstore.Options{
		Endpoint: cfg.Storage.Endpoint, AccessKeyIDFile: cfg.Storage.AccessKeyIDFile, SecretAccessKeyFile: cfg.Storage.SecretAccessKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	nc := r.ns.Connect(t)
	r.js, _ = jetstream.New(nc)
	_, err = r.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "MATERIALIZER_FILES",
		Subjects: []string{"materializer.files.>"}, Duplicates: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs a loader until the test ends (or stop).
func (r *rig) start(mod func(*load.Options)) (l *load.Loader, stop func()) {
	r.t.Helper()
	o := load.Options{Config: r.cfg, DSN: r.dsn, Store: r.store,
		Logger:   zerolog.New(zerolog.NewTestWriter(r.t)).Level(zerolog.WarnLevel),
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, OutageMin: 20 * time.Millisecond, OutageMax: 200 * time.Millisecond}
	if mod != nil {
		mod(&o)
	}
	l, err := load.New(o)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("loader Run: %v", err)
			}
		}
	}
	r.t.Cleanup(stop)
	return l, stop
}

// fileSpec is one file to deliver.
type fileSpec struct {
	et                        string // "" = article.updated
	table, kind, part, writer string
	seq                       uint64
	rows                      [][]string // "" is NULL
}

var seqs = map[string]uint64{}

// put stores a gzip CSV file (header, rows) and returns its notice.
func (r *rig) put(f fileSpec) notify.Notice {
	r.t.Helper()
	s, err := load.NewSchema(r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	if f.et == "" {
		f.et = "article.updated"
	}
	et := s.EventType(f.et)
	cols := et.Rejected.File
	if f.kind != "rejected" {
		cols = et.Table(f.table).File
	}
	if f.part == "" {
		f.part = "0"
	}
	if f.writer == "" {
		f.writer = "w1"
	}
	if f.seq == 0 {
		seqs[f.et+f.table+f.kind+f.part+f.writer]++
		f.seq = seqs[f.et+f.table+f.kind+f.part+f.writer]
	}
	var text bytes.Buffer
	w := csv.NewWriter(&text)
	var header []string
	for _, c := range cols {
		header = append(header, c.Name)
	}
	_ = w.Write(header)
	_ = w.WriteAll(f.rows)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(text.Bytes())
	zw.Close()
	key := fmt.Sprintf("%s/%s/%s/dt=2026-12-07/%s.%s.%s.p%s.%s.%010d.csv.gz", f.et, f.table, f.kind, f.et, f.table, f.kind, f.part, f.writer, f.seq)
	st, err := r.store.Put(context.Background(), key, bytes.NewReader(gz.Bytes()), int64(gz.Len()), blobstore.PutMeta{})
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(gz.Bytes())
	return notify.Notice{ID: key, URL: st.URL, EventType: f.et, Table: f.table, Kind: f.kind,
		Partition: f.part, Writer: f.writer, Seq: f.seq, Rows: int64(len(f.rows)), Events: int64(len(f.rows)),
		Bytes: int64(gz.Len()), SHA256: hex.EncodeToString(sum[:]), Compression: "gzip", Header: true,
		Columns: cols, CreatedAt: time.Now()}
}

// publish announces notices in order (each with a Msg-Id of its own, so a
// repeated notice is stored again, as after the duplicate window).
func (r *rig) publish(ns ...notify.Notice) {
	r.t.Helper()
	for _, n := range ns {
		msg := &nats.Msg{Subject: "materializer.files." + n.EventType, Data: n.Marshal(), Header: nats.Header{}}
		msg.Header.Set("Nats-Msg-Id", fmt.Sprintf("%s#%d", n.ID, time.Now().UnixNano()))
		if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
			r.t.Fatal(err)
		}
	}
}

// sql runs a query with psql and returns its rows, '|'-separated.
func (r *rig) sql(q string) string {
	r.t.Helper()
	return strings.TrimSpace(r.pg.MustExec(r.t, q))
}

// waitFor polls cond (deadline 60 s).
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a loaded machine is slow; a pass is fast
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLoaded waits until schema's loaded_files holds n notices.
func (r *rig) waitLoaded(schema string, n int) {
	r.t.Helper()
	r.waitFor(fmt.Sprintf("%d loaded files in %s", n, schema), func() bool {
		out, err := r.pg.Exec(context.Background(), "SELECT count(*) FROM "+schema+".materializer_loaded_files")
		return err == nil && strings.TrimSpace(out) == fmt.Sprint(n)
	})
}

// corrupt replaces a stored object's bytes.
func (r *rig) corrupt(n notify.Notice, body []byte) {
	r.t.Helper()
	if r.fake != nil {
		if err := r.fake.PutDirect("dwh/"+n.ID, body, map[string]string{}); err != nil {
			r.t.Fatal(err)
		}
		return
	}
	path := filepath.Join(r.root, n.ID)
	os.Remove(path)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		r.t.Fatal(err)
	}
}
