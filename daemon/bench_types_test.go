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
//
// MATERIALIZER_BENCH_PROFILE=DIR saves the final flush's CPU and heap
// profiles there; MATERIALIZER_BENCH_INLINE=1 (with MATERIALIZER_BIN) runs
// a build from before include.
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
	b.Logf("%d event types: applied in %s, flush %s (sealed in %s, delivered in %s), peak RSS %d MiB, %d fds, %d goroutines; one event type: %s, flush %s, peak RSS %d MiB, %d fds, %d goroutines",
		types, r.elapsed.Round(time.Millisecond), r.flush.Round(time.Millisecond), r.sealedIn, r.deliveredIn, r.peakRSS>>20, r.fds, r.goroutines,
		base.elapsed.Round(time.Millisecond), base.flush.Round(time.Millisecond), base.peakRSS>>20, base.fds, base.goroutines)
}

type typesResult struct {
	elapsed, flush  time.Duration
	sealedIn        string // the flush's parts, as the daemon logged them
	deliveredIn     string
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
	// MATERIALIZER_BENCH_INLINE=1 writes the event types into the main
	// config, for a build from before include (MATERIALIZER_BIN).
	inline := os.Getenv("MATERIALIZER_BENCH_INLINE") != ""
	var types strings.Builder
	for _, name := range names {
		toml := strings.Replace(e2etest.ArticleTypeTOML, `name          = "article.updated"`, fmt.Sprintf("name          = %q", name), 1)
		if inline {
			types.WriteString(toml)
		} else if err := os.WriteFile(filepath.Join(incDir, name+".toml"), []byte(toml), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	head, tail := `include = ["event-types.d/*.toml"]`, ""
	if inline {
		head, tail = "", types.String()
	}
	path := writeBenchConfig(b, dir, nakadiURL, natsURL, head, tail)
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
	if dir := os.Getenv("MATERIALIZER_BENCH_PROFILE"); dir != "" && len(names) > 1 {
		// The flush's CPU profile and, 5 s into it, its heap.
		go func() {
			_, prof := get(b, base+"/debug/pprof/profile?seconds=20")
			os.WriteFile(filepath.Join(dir, "flush.cpu.prof"), []byte(prof), 0o644)
		}()
		go func() {
			time.Sleep(5 * time.Second)
			_, prof := get(b, base+"/debug/pprof/heap")
			os.WriteFile(filepath.Join(dir, "flush.heap.prof"), []byte(prof), 0o644)
		}()
	}
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
	if flushed, ok := p.logged("flushed"); ok { // builds before it did not log it
		r.sealedIn, r.deliveredIn = fmt.Sprint(flushed["sealed_in"]), fmt.Sprint(flushed["delivered_in"])
	}
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
