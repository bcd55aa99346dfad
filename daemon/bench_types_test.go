package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/pipeline/nakadi/emulator"
)

// BenchmarkEventTypes: one daemon consumes many event types (1,000; set
// MATERIALIZER_BENCH_TYPES for another count), each with 1,000 article
// events over 4 partitions, configured through one include file per event
// type; then a flush delivers everything (file:// storage, gzip, NATS). It
// reports events/s until every event is applied, the final flush's
// duration, and at their peak the daemon's RSS, open file descriptors and
// goroutines. The same-run baseline is the same daemon with all events in
// one event type (x_baseline_time = time with many types / time with one).
//
//	go test ./daemon -run '^$' -bench EventTypes -benchtime 1x
func BenchmarkEventTypes(b *testing.B) {
	types := 1000
	if v, err := strconv.Atoi(os.Getenv("MATERIALIZER_BENCH_TYPES")); err == nil && v > 0 {
		types = v
	}
	const perType, partitions = 1000, 4
	nk := emulator.NewServer(emulator.Options{})
	b.Cleanup(nk.Close)
	names := make([]string, types)
	for i := range names {
		names[i] = fmt.Sprintf("shop%04d.article.updated", i)
		if err := nk.CreateEventType(names[i], partitions, []string{"article_id"}); err != nil {
			b.Fatal(err)
		}
	}
	if err := nk.CreateEventType("all.article.updated", partitions, []string{"article_id"}); err != nil {
		b.Fatal(err)
	}
	gen := articles.New(7, 300, time.Now)
	for _, name := range names {
		batch := make([][]byte, perType)
		for i := range batch {
			batch[i] = gen.Next().Raw
		}
		if err := nk.Publish(name, batch...); err != nil {
			b.Fatal(err)
		}
		if err := nk.Publish("all.article.updated", batch...); err != nil {
			b.Fatal(err)
		}
	}
	ns := natstest.Start(b)
	base := typesRun(b, nk.URL(), ns.URL(), []string{"all.article.updated"}, types*perType)
	r := typesRun(b, nk.URL(), ns.URL(), names, perType)
	b.ReportMetric(float64(types*perType)/r.elapsed.Seconds(), "events/s")
	b.ReportMetric(r.flush.Seconds(), "flush_s")
	b.ReportMetric(float64(r.peakRSS)/(1<<20), "peakRSS_MiB")
	b.ReportMetric(float64(r.fds), "peak_fds")
	b.ReportMetric(float64(r.goroutines), "peak_goroutines")
	b.ReportMetric(float64(types*perType)/base.elapsed.Seconds(), "baseline_events/s")
	b.ReportMetric((r.elapsed+r.flush).Seconds()/(base.elapsed+base.flush).Seconds(), "x_baseline_time")
	b.Logf("%d event types: applied in %s, flush %s, peak RSS %d MiB, %d fds, %d goroutines; one event type: %s, flush %s, peak RSS %d MiB, %d fds, %d goroutines",
		types, r.elapsed.Round(time.Millisecond), r.flush.Round(time.Millisecond), r.peakRSS>>20, r.fds, r.goroutines,
		base.elapsed.Round(time.Millisecond), base.flush.Round(time.Millisecond), base.peakRSS>>20, base.fds, base.goroutines)
}

type typesResult struct {
	elapsed, flush  time.Duration
	peakRSS         int64
	fds, goroutines int
}

// typesRun runs the real binary on event types (one include file each),
// waits until each received perType events, then flushes.
func typesRun(b *testing.B, nakadiURL, natsURL string, names []string, perType int) typesResult {
	dir := b.TempDir()
	incDir := filepath.Join(dir, "event-types.d")
	if err := os.MkdirAll(incDir, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, name := range names {
		toml := strings.Replace(e2etest.ArticleTypeTOML, `name          = "article.updated"`, fmt.Sprintf("name          = %q", name), 1)
		if err := os.WriteFile(filepath.Join(incDir, name+".toml"), []byte(toml), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(dir, "materializer.toml")
	text := fmt.Sprintf(`include = ["event-types.d/*.toml"]
[daemon]
data_dir = %q
admin_listen = "127.0.0.1:0"
log_format = "json"
log_level = "info"
[nakadi]
url = %q
owning_application = "materializer-bench"
read_from = "begin"
batch_limit = 500
batch_flush_timeout = "1s"
[storage]
url = "file://%s"
compression = "gzip"
[notify]
nats_url = %q
`, filepath.Join(dir, "data"), nakadiURL, filepath.Join(dir, "storage"), natsURL)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	p := startRun(b, path)
	start := time.Now()
	base := p.adminURL()
	var r typesResult
	sample := func() {
		pid := p.cmd.Process.Pid
		r.peakRSS = max(r.peakRSS, vmHWM(pid))
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			r.fds = max(r.fds, len(fds))
		}
		// The goroutine profile's first line, not /metrics: the metrics of
		// a thousand event types are megabytes to render.
		_, prof := get(b, base+"/debug/pprof/goroutine?debug=1")
		var n int
		fmt.Sscanf(prof, "goroutine profile: total %d", &n)
		r.goroutines = max(r.goroutines, n)
	}
	for {
		sample()
		if received(b, base) >= len(names)*perType {
			break
		}
		if time.Since(start) > 30*time.Minute {
			b.Fatal("the daemon did not apply every event within 30 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.elapsed = time.Since(start)
	fstart := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if code, body := do(b, "POST", base+"/v1/flush", ""); code != 200 {
			b.Errorf("flush: %d %s", code, body)
		}
	}()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(200 * time.Millisecond):
			sample()
		}
	}
	r.flush = time.Since(fstart)
	sample()
	p.signal(syscall.SIGTERM)
	p.wait(5 * time.Minute)
	return r
}

// received sums the events received of every event type (GET /v1/status).
func received(b *testing.B, base string) int {
	code, body := get(b, base+"/v1/status")
	if code != 200 {
		return 0
	}
	var st statusView
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return 0
	}
	n := 0
	for _, et := range st.EventTypes {
		n += int(et.Counters.Received)
	}
	return n
}
