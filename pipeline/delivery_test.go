package pipeline_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"materializer/conf"
	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/internal/pgtest"
	"materializer/internal/s3test"
	"materializer/pipeline"
	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi/emulator"
)

// deliveryEnv runs the pipeline in-process against the emulator and NATS.
type deliveryEnv struct {
	nk  *emulator.Server
	ns  *natstest.Server
	dir string
	cfg *conf.Config
}

func newDeliveryEnv(t *testing.T) *deliveryEnv {
	t.Helper()
	env := &deliveryEnv{dir: t.TempDir()}
	env.nk = e2etest.ArticleEmulator(t, 4)
	env.ns = natstest.Start(t)
	_, env.cfg = e2etest.Config(t, e2etest.Setup{Dir: env.dir, NakadiURL: env.nk.URL(), NATSURL: env.ns.URL()})
	return env
}

// useFakeS3 points storage at an in-process S3 whose faults the test drives.
func (env *deliveryEnv) useFakeS3(t *testing.T) *s3test.Fake {
	fake := s3test.StartFake(t)
	id, secret := fake.CredFiles(t)
	s := &env.cfg.Storage
	s.URL, s.Endpoint, s.AccessKeyIDFile, s.SecretAccessKeyFile = fake.URL("dwh"), fake.Endpoint, id, secret
	return fake
}

// start runs the pipeline and publishes events; it returns once the
// pipeline received them all.
func (env *deliveryEnv) start(t *testing.T, events []articles.Event) *pipeline.Pipeline {
	t.Helper()
	p, _ := e2etest.StartPipeline(t, env.cfg, nil)
	e2etest.Publish(t, env.nk, events)
	waitReceived(t, p, len(events))
	return p
}

// status is the article.updated entry of the pipeline's status.
func status(t *testing.T, p *pipeline.Pipeline) pipeline.EventTypeStatus {
	t.Helper()
	return e2etest.EventType(t, p, "article.updated")
}

func waitReceived(t *testing.T, p *pipeline.Pipeline, n int) {
	t.Helper()
	e2etest.WaitFor(t, 2*time.Minute, fmt.Sprintf("%d events received", n), func() bool { return status(t, p).Counters.Received == uint64(n) })
}

// flushWithin flushes and returns the error (a flush that must not finish
// gets a short budget).
func flushWithin(p *pipeline.Pipeline, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := p.Flush(ctx, "")
	return err
}

func isPut(r s3test.Request) bool { return r.Method == "PUT" && r.Query.Get("partNumber") == "" }

// S3 down for a while: sealed files wait in the outbox (and the flush that
// needs them waits), then every file arrives exactly once.
func TestS3OutageFilesWaitThenArriveOnce(t *testing.T) {
	env := newDeliveryEnv(t)
	fake := env.useFakeS3(t)
	fake.Down(s3test.SlowDown)
	p := env.start(t, e2etest.Generate(3, 200, 3000))
	if err := flushWithin(p, 2*time.Second); err == nil {
		t.Fatal("a flush finished while S3 was down")
	}
	if pending := status(t, p).Delivery; pending.PendingFiles == 0 || pending.Uploaded != 0 {
		t.Fatalf("delivery status while S3 is down: %+v", pending)
	}
	fake.Up()
	e2etest.Flush(t, p)
	puts := map[string]int{}
	for _, r := range fake.Requests() {
		if isPut(r) && r.Status == 200 {
			puts[r.Path]++
		}
	}
	if len(puts) == 0 {
		t.Fatal("nothing stored")
	}
	for key, n := range puts {
		if n != 1 {
			t.Errorf("%s stored %d times", key, n)
		}
	}
	if s := status(t, p).Delivery; s.PendingFiles != 0 {
		t.Errorf("outbox after the flush: %+v", s)
	}
}

// NATS down: uploads go on, notices wait in the outbox and arrive after NATS
// is back — exactly one per file.
func TestNATSOutageNoticesArriveLater(t *testing.T) {
	env := newDeliveryEnv(t)
	p, _ := e2etest.StartPipeline(t, env.cfg, nil)
	env.ns.Shutdown()
	events := e2etest.Generate(4, 200, 3000)
	e2etest.Publish(t, env.nk, events)
	waitReceived(t, p, len(events))
	if err := flushWithin(p, 2*time.Second); err == nil {
		t.Fatal("a flush finished while NATS was down")
	}
	e2etest.WaitFor(t, 30*time.Second, "uploads while NATS is down", func() bool {
		return status(t, p).Delivery.Uploaded > 0 && len(e2etest.ReadDelivered(t, filepath.Join(env.dir, "storage"))) > 0
	})
	env.ns.Restart()
	e2etest.Flush(t, p)
	files := e2etest.ReadDelivered(t, filepath.Join(env.dir, "storage"))
	e2etest.CheckDelivered(t, files, e2etest.Expect(events))
	e2etest.CheckNotices(t, env.ns.URL(), files)
}

// A file rolls on time even when no event arrives: correction rows of a
// quiet stream are delivered after roll_max_age without a flush.
func TestRollOnTimeWithoutTraffic(t *testing.T) {
	env := newDeliveryEnv(t)
	env.cfg.Storage.RollMaxAge = conf.Dur(time.Second)
	env.start(t, e2etest.Generate(5, 20, 400)) // corrections among them are written at once
	e2etest.WaitFor(t, 30*time.Second, "a correction file delivered by age", func() bool {
		for _, f := range e2etest.ReadDelivered(t, filepath.Join(env.dir, "storage")) {
			if f.Kind == "correction" {
				return true
			}
		}
		return false
	})
}

// Above max_staged_bytes the daemon stops reading from Nakadi — it neither
// drops nor runs out of memory — and resumes once delivery catches up.
func TestBackpressurePausesAndResumes(t *testing.T) {
	env := newDeliveryEnv(t)
	fake := env.useFakeS3(t)
	env.cfg.Storage.MaxStagedBytes = conf.Bytes(4 << 10)
	env.cfg.Storage.RollMaxBytes = conf.Bytes(1 << 10)
	env.cfg.Storage.RollMaxRows = 20
	fake.Down(s3test.InternalError)
	p, _ := e2etest.StartPipeline(t, env.cfg, nil)
	events := e2etest.Generate(6, 100, 3000)
	e2etest.Publish(t, env.nk, events[:1500])
	// Backpressure closes the stream, and the consumer opens none until it
	// is released: Nakadi then sends nothing more, not even what is
	// published meanwhile.
	e2etest.WaitFor(t, 60*time.Second, "backpressure with the stream closed", func() bool {
		s := status(t, p)
		return s.State == "backpressure" && env.nk.OpenStreams(s.Subscription) == 0
	})
	e2etest.Publish(t, env.nk, events[1500:])
	sent := 0
	for part := range 4 {
		sent += env.nk.SentEvents("article.updated", part)
	}
	if sent >= len(events) || status(t, p).Counters.Received > uint64(sent) {
		t.Fatalf("under backpressure Nakadi sent %d of %d events, %d received", sent, len(events), status(t, p).Counters.Received)
	}
	fake.Up()
	waitReceived(t, p, len(events))
	e2etest.Flush(t, p)
	// The flush stages new files (closed sessions) and may engage
	// backpressure once more; it must let go once they are delivered.
	e2etest.WaitFor(t, time.Minute, "consuming again", func() bool { return status(t, p).State == "consuming" })
	if s := status(t, p); !s.Counters.Balanced() || s.Counters.Open != 0 {
		t.Fatalf("after backpressure: %+v", s.Counters)
	}
}

// Every delivered file loads into PostgreSQL with COPY … CSV HEADER, into
// the tables `materializer ddl` creates.
func TestDeliveredFilesLoadIntoPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	env := newDeliveryEnv(t)
	p := env.start(t, e2etest.Generate(8, 100, 2000))
	e2etest.Flush(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	et := env.cfg.EventTypes[0]
	ddl, err := flatten.DDL(flatten.DialectPostgres, et.Name, et.TableSpecs())
	if err != nil {
		t.Fatal(err)
	}
	pg.MustExec(t, ddl)
	rows := map[string]int{}
	for _, f := range e2etest.ReadDelivered(t, filepath.Join(env.dir, "storage")) {
		table := f.Table
		switch f.Kind {
		case "correction":
			table += "_correction"
		case "rejected":
			table = "article_updated_rejected"
		}
		plain := filepath.Join(t.TempDir(), "file.csv")
		if err := os.WriteFile(plain, gunzip(t, f.Raw), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := pg.CopyCSV(ctx, pgtest.Ident(table), plain, "FORMAT csv, HEADER true"); err != nil {
			t.Fatalf("COPY %s from %s: %v", table, f.Key, err)
		}
		rows[table] += len(f.Rows)
	}
	for table, n := range rows {
		got := strings.TrimSpace(pg.MustExec(t, "SELECT count(*) FROM "+pgtest.Ident(table)))
		if got != strconv.Itoa(n) {
			t.Errorf("%s: %s rows in PostgreSQL, %d in the files", table, got, n)
		}
	}
	if rows["article"] == 0 || rows["article_correction"] == 0 || rows["article_updated_rejected"] == 0 {
		t.Errorf("expected rows of every kind: %v", rows)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
