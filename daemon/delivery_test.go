package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"materializer/conf"
	"materializer/internal/natstest"
	"materializer/internal/pgtest"
	"materializer/internal/s3test"
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
	env.nk = newArticleEmulator(t, 4)
	env.ns = natstest.Start(t)
	env.cfg = pipelineConfig(t, env.dir, env.nk.URL(), env.ns.URL())
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

func generate(seed uint64, articles, n int) []article {
	gen := newArticleGen(seed, articles, time.Now)
	events := make([]article, n)
	for i := range events {
		events[i] = gen.next()
	}
	return events
}

func isPut(r s3test.Request) bool { return r.Method == "PUT" && r.Query.Get("partNumber") == "" }

// S3 down for a while: sealed files wait in the outbox (and the flush that
// needs them waits), then every file arrives exactly once.
func TestS3OutageFilesWaitThenArriveOnce(t *testing.T) {
	env := newDeliveryEnv(t)
	fake := env.useFakeS3(t)
	fake.Down(s3test.SlowDown)
	e := runEngine(t, env.cfg)
	events := generate(3, 200, 3000)
	publish(t, env.nk, events)
	waitFor(t, 60*time.Second, "events received", func() bool { return etStatus(t, e).Counters.Received == uint64(len(events)) })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := e.Flush(ctx, "")
	cancel()
	if err == nil {
		t.Fatal("a flush finished while S3 was down")
	}
	if pending := etStatus(t, e).Delivery; pending.PendingFiles == 0 || pending.Uploaded != 0 {
		t.Fatalf("delivery status while S3 is down: %+v", pending)
	}
	fake.Up()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
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
	if s := etStatus(t, e).Delivery; s.PendingFiles != 0 {
		t.Errorf("outbox after the flush: %+v", s)
	}
}

// NATS down: uploads go on, notices wait in the outbox and arrive after NATS
// is back — exactly one per file.
func TestNATSOutageNoticesArriveLater(t *testing.T) {
	env := newDeliveryEnv(t)
	e := runEngine(t, env.cfg)
	env.ns.Shutdown()
	events := generate(4, 200, 3000)
	publish(t, env.nk, events)
	waitFor(t, 60*time.Second, "events received", func() bool { return etStatus(t, e).Counters.Received == uint64(len(events)) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := e.Flush(ctx, "")
	cancel()
	if err == nil {
		t.Fatal("a flush finished while NATS was down")
	}
	waitFor(t, 30*time.Second, "uploads while NATS is down", func() bool {
		return etStatus(t, e).Delivery.Uploaded > 0 && len(readDelivered(t, filepath.Join(env.dir, "storage"))) > 0
	})
	env.ns.Restart()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	files := readDelivered(t, filepath.Join(env.dir, "storage"))
	checkDelivered(t, files, expect(events))
	checkNotices(t, env.ns.URL(), files)
}

// A file rolls on time even when no event arrives: correction rows of a
// quiet stream are delivered after roll_max_age without a flush.
func TestRollOnTimeWithoutTraffic(t *testing.T) {
	env := newDeliveryEnv(t)
	env.cfg.Storage.RollMaxAge = conf.Dur(time.Second)
	e := runEngine(t, env.cfg)
	events := generate(5, 20, 400) // corrections among them are written at once
	publish(t, env.nk, events)
	waitFor(t, 60*time.Second, "events received", func() bool { return etStatus(t, e).Counters.Received == uint64(len(events)) })
	waitFor(t, 30*time.Second, "a correction file delivered by age", func() bool {
		for _, f := range readDelivered(t, filepath.Join(env.dir, "storage")) {
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
	e := runEngine(t, env.cfg)
	events := generate(6, 100, 3000)
	publish(t, env.nk, events)
	waitFor(t, 60*time.Second, "backpressure", func() bool { return etStatus(t, e).State == "backpressure" })
	time.Sleep(500 * time.Millisecond) // let the stream stop: received must stand still
	held := etStatus(t, e).Counters.Received
	if held >= uint64(len(events)) {
		t.Fatalf("all %d events were consumed despite backpressure", held)
	}
	if s := etStatus(t, e); s.Counters.Received > held+uint64(2*env.cfg.Nakadi.BatchLimit*4) {
		t.Fatalf("still consuming under backpressure: %d → %d", held, s.Counters.Received)
	}
	fake.Up()
	waitFor(t, 2*time.Minute, "every event after backpressure", func() bool { return etStatus(t, e).Counters.Received == uint64(len(events)) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	// The flush stages new files (closed sessions) and may engage
	// backpressure once more; it must let go once they are delivered.
	waitFor(t, time.Minute, "consuming again", func() bool { return etStatus(t, e).State == "consuming" })
	if s := etStatus(t, e); !s.Counters.Balanced() || s.Counters.Open != 0 {
		t.Fatalf("after backpressure: %+v", s.Counters)
	}
}

// Every delivered file loads into PostgreSQL with COPY … CSV HEADER, into
// the tables `materializer ddl` creates.
func TestDeliveredFilesLoadIntoPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	env := newDeliveryEnv(t)
	e := runEngine(t, env.cfg)
	events := generate(8, 100, 2000)
	publish(t, env.nk, events)
	waitFor(t, 60*time.Second, "events received", func() bool { return etStatus(t, e).Counters.Received == uint64(len(events)) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	et := env.cfg.EventTypes[0]
	ddl, err := flatten.DDL(flatten.DialectPostgres, et.Name, et.TableSpecs())
	if err != nil {
		t.Fatal(err)
	}
	pg.MustExec(t, ddl)
	rows := map[string]int{}
	for _, f := range readDelivered(t, filepath.Join(env.dir, "storage")) {
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
