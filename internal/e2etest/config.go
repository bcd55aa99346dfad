package e2etest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"materializer/conf"
	"materializer/internal/articles"
	"materializer/pipeline/nakadi/emulator"
)

// ArticleType is the article.updated event type of the pipeline tests and
// the benchmark: an article table and its article_size child table, sessions that close only
// by a flush; ordering and the price column's type vary.
func ArticleType(ordering, priceType string) string {
	return fmt.Sprintf(`[[event_types]]
name          = "article.updated"
partition_key = ["article_id"]
ordering_key  = "version"
ordering      = %q
session_gap   = "1h"
session_max   = "2h"
  [[event_types.tables]]
  name    = "article"
  columns = [
    { name = "article_id",  path = "article_id",           type = "int", required = true },
    { name = "brand",       path = "brand" },
    { name = "version",     path = "version",              type = "int" },
    { name = "price",       path = "price.amount",         type = %q },
    { name = "occurred_at", path = "metadata.occurred_at", type = "timestamp" },
  ]
  [[event_types.tables]]
  name    = "article_size"
  columns = [
    { name = "article_id", path = "article_id",   type = "int" },
    { name = "size",       path = "sizes[*].size" },
    { name = "qty",        path = "sizes[*].qty", type = "int" },
  ]
`, ordering, priceType)
}

// TrackedArticleType is the article.updated event type of the crash and
// fleet tests: short sessions (keys close many), and an eid column in both
// tables so the checks can tell every row's event; extra adds columns to
// the article table (a changed mapping).
func TrackedArticleType(sessionGap, sessionMax, extra string) string {
	return fmt.Sprintf(`[[event_types]]
name          = "article.updated"
partition_key = ["article_id"]
ordering_key  = "version"
ordering      = "number"
session_gap   = %q
session_max   = %q
  [[event_types.tables]]
  name    = "article"
  columns = [
    { name = "article_id",  path = "article_id",           type = "int", required = true },
    { name = "version",     path = "version",              type = "int" },
    { name = "brand",       path = "brand" },
    { name = "price",       path = "price.amount",         type = "decimal" },
    { name = "occurred_at", path = "metadata.occurred_at", type = "timestamp" },
    { name = "eid",         path = "metadata.eid" },
    %s
  ]
  [[event_types.tables]]
  name    = "article_size"
  columns = [
    { name = "article_id", path = "article_id",   type = "int" },
    { name = "size",       path = "sizes[*].size" },
    { name = "qty",        path = "sizes[*].qty", type = "int" },
    { name = "eid",        path = "metadata.eid" },
  ]
`, sessionGap, sessionMax, extra)
}

// ArticleTypeTOML is ArticleType with numeric versions and decimal prices.
var ArticleTypeTOML = ArticleType("number", "decimal")

// Setup is what a test's config names.
type Setup struct {
	Dir           string // data dir is dir/data, storage dir/storage unless set
	NakadiURL     string
	NATSURL       string
	Group         string // consumer group; "" = default
	Storage       string // storage directory; "" = dir/storage
	CheckpointURL string
	Endpoint      string // storage.endpoint (used by an s3:// checkpoint url)
	CredFiles     [2]string
	Extra         string // more [checkpoint] keys
	Admin         string // admin_listen; "" = 127.0.0.1:0
	Ordering      string // "" = number
	PriceType     string // "" = decimal
}

// Config writes the config file (for the CLI) and returns its path and
// the parsed config (for the in-process pipeline).
func Config(t testing.TB, s Setup) (string, *conf.Config) {
	t.Helper()
	if s.Storage == "" {
		s.Storage = filepath.Join(s.Dir, "storage")
	}
	if s.Group == "" {
		s.Group = "default"
	}
	if s.Admin == "" {
		s.Admin = "127.0.0.1:0"
	}
	if s.Ordering == "" {
		s.Ordering = "number"
	}
	if s.PriceType == "" {
		s.PriceType = "decimal"
	}
	creds := ""
	if s.Endpoint != "" {
		creds = fmt.Sprintf("endpoint = %q\naccess_key_id_file = %q\nsecret_access_key_file = %q\n", s.Endpoint, s.CredFiles[0], s.CredFiles[1])
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
%s`, filepath.Join(s.Dir, "data"), s.Admin, s.NakadiURL, s.Group, s.Storage, creds, s.NATSURL, s.CheckpointURL, s.Extra,
		ArticleType(s.Ordering, s.PriceType))
	path := filepath.Join(s.Dir, "materializer.toml")
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
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

// ArticleEmulator starts the Nakadi emulator with the article.updated
// event type (partitioned by article_id).
func ArticleEmulator(t testing.TB, partitions int) *emulator.Server {
	t.Helper()
	nk := emulator.NewServer(emulator.Options{})
	t.Cleanup(nk.Close)
	if err := nk.CreateEventType("article.updated", partitions, []string{"article_id"}); err != nil {
		t.Fatal(err)
	}
	return nk
}

// Generate makes n article events over a number of articles.
func Generate(seed uint64, n, count int) []articles.Event {
	gen := articles.New(seed, n, time.Now)
	events := make([]articles.Event, count)
	for i := range events {
		events[i] = gen.Next()
	}
	return events
}

// Publish sends events to the emulator in batches, as producers would.
func Publish(t testing.TB, nk *emulator.Server, events []articles.Event) {
	t.Helper()
	for i := 0; i < len(events); i += 100 {
		var batch [][]byte
		for _, a := range events[i:min(i+100, len(events))] {
			batch = append(batch, a.Raw)
		}
		if err := nk.Publish("article.updated", batch...); err != nil {
			t.Fatal(err)
		}
	}
}

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
