package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"materializer/checkpoint"
	"materializer/conf"
)

// ckptSetup is what a checkpoint test's config names.
type ckptSetup struct {
	dir       string // data dir is dir/data, storage dir/storage unless set
	nakadiURL string
	natsURL   string
	group     string // consumer group; "" = default
	storage   string // storage directory; "" = dir/storage
	ckptURL   string
	endpoint  string // storage.endpoint (used by an s3:// checkpoint url)
	credFiles [2]string
	extra     string // more [checkpoint] keys
	admin     string // admin_listen; "" = 127.0.0.1:0
	ordering  string // "" = number
	priceType string // "" = decimal
}

// ckptConfig writes the config file (for the CLI) and returns its path and
// the parsed config (for the in-process pipeline).
func ckptConfig(t *testing.T, s ckptSetup) (string, *conf.Config) {
	t.Helper()
	if s.storage == "" {
		s.storage = filepath.Join(s.dir, "storage")
	}
	if s.group == "" {
		s.group = "default"
	}
	if s.admin == "" {
		s.admin = "127.0.0.1:0"
	}
	if s.ordering == "" {
		s.ordering = "number"
	}
	if s.priceType == "" {
		s.priceType = "decimal"
	}
	creds := ""
	if s.endpoint != "" {
		creds = fmt.Sprintf("endpoint = %q\naccess_key_id_file = %q\nsecret_access_key_file = %q\n", s.endpoint, s.credFiles[0], s.credFiles[1])
	}
	text := fmt.Sprintf(`
[daemon]
data_dir = %q
admin_listen = %q
[nakadi]
url = %q
owning_application = "materializer-test"
consumer_group = %q
read_from = "begin"
batch_limit = 100
batch_flush_timeout = "100ms"
commit_timeout = "10s"
[storage]
url = "file://%s"
compression = "gzip"
roll_max_rows = 300
roll_max_age = "1h"
%s
[notify]
nats_url = %q
[checkpoint]
interval = "0s"
keep = 20
url = %q
%s
%s`, filepath.Join(s.dir, "data"), s.admin, s.nakadiURL, s.group, s.storage, creds, s.natsURL, s.ckptURL, s.extra,
		articleType(s.ordering, s.priceType))
	path := filepath.Join(s.dir, "materializer.toml")
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Parse([]byte(text), conf.ForRun)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// ckptEngine runs the pipeline in-process until stop (or the test's end).
func ckptEngine(t *testing.T, cfg *conf.Config) (*engine, func()) {
	t.Helper()
	return startEngine(t, cfg, prometheus.NewRegistry())
}

// ckptTake takes a checkpoint through the engine (as POST /v1/checkpoints).
func ckptTake(t *testing.T, e *engine) *checkpoint.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := e.TakeCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := v.(*checkpoint.Result)
	if res.RemoteError != "" {
		t.Fatalf("remote copy: %s", res.RemoteError)
	}
	return res
}

// ckptFlush closes every session and waits for the delivery.
func ckptFlush(t *testing.T, e *engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
}

// csvRecords decodes a staging or delivered file (gzip members, CSV).
func csvRecords(t *testing.T, path string, raw []byte) [][]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: not a complete gzip stream: %v", path, err)
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: not valid CSV: %v", path, err)
	}
	return recs
}
