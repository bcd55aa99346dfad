package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/pipeline/nakadi"
)

// benchWorkload is one end-to-end benchmark's load.
type benchWorkload struct {
	events, keys int
	sessionGap   string // how long a key's session stays open without events
}

// benchEvents scales a workload's event count (MATERIALIZER_BENCH_EVENTS
// overrides it for a quick run).
func benchEvents(n int) int {
	if v, err := strconv.Atoi(os.Getenv("MATERIALIZER_BENCH_EVENTS")); err == nil && v > 0 {
		return v
	}
	return n
}

// BenchmarkEndToEnd: the real binary consumes events of ~1 KB from the
// Nakadi emulator over 8 partitions (with the generator's out-of-order,
// duplicate, conflicting and malformed events), state synced per step,
// files gzip on local disk, notices to JetStream, default memory budget;
// then a flush delivers everything. It reports events/s and MB/s until
// every event is applied, the steady rate (from 10 % to 90 % of the events),
// the peak RSS of the daemon, the compaction ratio, and — in the same run,
// on the same machine — the same figures for a baseline that only reads the
// stream with our client and appends the raw events to a file. Run one at a
// time:
//
//	go test ./daemon -run '^$' -bench 'EndToEnd/keys=100k' -benchtime 1x
//	go test ./daemon -run '^$' -bench 'EndToEnd/keys=1M' -benchtime 1x
//
// keys=100k: 1M events over 100k articles, sessions that close only at the
// final flush. keys=1M: 2M events over 1M articles published as a backlog,
// session gap 20 s, so sessions close during the run.
func BenchmarkEndToEnd(b *testing.B) {
	b.Run("keys=100k", func(b *testing.B) {
		benchEndToEnd(b, benchWorkload{events: 1_000_000, keys: 100_000, sessionGap: "1h"})
	})
	b.Run("keys=1M", func(b *testing.B) {
		benchEndToEnd(b, benchWorkload{events: 2_000_000, keys: 1_000_000, sessionGap: "20s"})
	})
}

func benchEndToEnd(b *testing.B, w benchWorkload) {
	n := benchEvents(w.events)
	nk := e2etest.ArticleEmulator(b, 8)
	gen := articles.New(99, w.keys, time.Now)
	pad := `"description":"` + strings.Repeat("lorem ipsum ", 56) + `",`
	var bytes int64
	batch := make([][]byte, 0, 1000)
	for i := 0; i < n; i++ {
		raw := gen.Next().Raw
		ev := append([]byte("{"+pad), raw[1:]...)
		bytes += int64(len(ev))
		batch = append(batch, ev)
		if len(batch) == cap(batch) || i == n-1 {
			if err := nk.Publish("article.updated", batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("%d events over %d keys, %.0f MB, %.0f bytes/event", n, w.keys, float64(bytes)/1e6, float64(bytes)/float64(n))

	base := baselineRun(b, nk.URL(), n)
	ns := natstest.Start(b)
	d := daemonRun(b, nk.URL(), ns.URL(), n, w)
	b.ReportMetric(float64(n)/d.elapsed.Seconds(), "events/s")
	b.ReportMetric(d.steady, "steady_events/s")
	b.ReportMetric(float64(bytes)/1e6/d.elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(d.peakRSS)/(1<<20), "peakRSS_MiB")
	b.ReportMetric(float64(n)/d.cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(d.ratio, "compaction_ratio")
	b.ReportMetric(float64(n)/base.Seconds(), "baseline_events/s")
	b.ReportMetric(d.elapsed.Seconds()/base.Seconds(), "x_baseline_time")
	b.Logf("daemon: %s to apply all (%s flush), peak RSS %d MiB; baseline: %s", d.elapsed.Round(time.Millisecond),
		d.flush.Round(time.Millisecond), d.peakRSS>>20, base.Round(time.Millisecond))
}

// baselineRun is the floor: our client reads every event and appends it to
// a file, committing cursors; nothing else.
func baselineRun(b *testing.B, url string, n int) time.Duration {
	c, err := nakadi.New(nakadi.Config{
		URL: url, OwningApplication: "baseline", ConsumerGroup: "baseline", EventTypes: []string{"article.updated"},
		ReadFrom: "begin", BatchLimit: 500, BatchFlushTimeout: time.Second, Logger: zerolog.Nop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "raw.ndjson"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *nakadi.Batch, 8)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(ctx, out) }()
	for got := 0; got < n; {
		bt := <-out
		for _, ev := range bt.Events {
			w.Write(ev)
			w.WriteByte('\n')
		}
		got += len(bt.Events)
		c.Durable(bt)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	cancel()
	<-done
	return elapsed
}

type daemonResult struct {
	elapsed, flush time.Duration
	steady         float64       // events/s from 10 % to 90 % of the events
	cpu            time.Duration // the daemon's CPU time, the flush included
	peakRSS        int64
	ratio          float64
}

// writeBenchConfig writes the benchmarks' config into dir (file:// storage
// and the data dir there, gzip, NATS): head goes before its tables, tail
// after them.
func writeBenchConfig(b *testing.B, dir, nakadiURL, natsURL, head, tail string) string {
	path := filepath.Join(dir, "materializer.toml")
	text := fmt.Sprintf(`%s
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
%s`, head, filepath.Join(dir, "data"), nakadiURL, filepath.Join(dir, "storage"), natsURL, tail)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// daemonRun runs the real binary on the events and waits until all are
// applied, then flushes.
func daemonRun(b *testing.B, nakadiURL, natsURL string, n int, w benchWorkload) daemonResult {
	dir := b.TempDir()
	path := writeBenchConfig(b, dir, nakadiURL, natsURL, "",
		strings.Replace(e2etest.ArticleTypeTOML, `session_gap   = "1h"`, fmt.Sprintf("session_gap   = %q", w.sessionGap), 1))
	p := startRun(b, path)
	start := time.Now()
	base := p.adminURL()
	var peak, goSys, goHeap int64
	var at10, at90 time.Time
	var n10, n90 uint64
	profiled := os.Getenv("MATERIALIZER_BENCH_PROFILE") == ""
	for i := 0; ; i++ {
		peak = max(peak, vmHWM(p.cmd.Process.Pid))
		if i%10 == 0 {
			_, metrics := get(b, base+"/metrics")
			goSys = max(goSys, int64(metricValue(metrics, "go_memstats_sys_bytes")))
			goHeap = max(goHeap, int64(metricValue(metrics, "go_memstats_heap_inuse_bytes")))
		}
		s, ok := adminStatus(b, base)
		if ok && at10.IsZero() && s.Counters.Received >= uint64(n/10) {
			at10, n10 = time.Now(), s.Counters.Received
		}
		if ok && at90.IsZero() && s.Counters.Received >= uint64(n*9/10) {
			at90, n90 = time.Now(), s.Counters.Received
		}
		if ok && s.Counters.Received >= uint64(n) {
			break
		}
		if ok && !profiled && s.Counters.Received >= uint64(n/3) {
			profiled = true
			go saveProfiles(b, base, os.Getenv("MATERIALIZER_BENCH_PROFILE"))
		}
		if time.Since(start) > 30*time.Minute {
			b.Fatal("daemon did not apply every event within 30 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	fstart := time.Now()
	if code, body := do(b, "POST", base+"/v1/flush", ""); code != 200 {
		b.Fatalf("flush: %d %s", code, body)
	}
	flush := time.Since(fstart)
	_, metrics := get(b, base+"/metrics")
	steps := metricValue(metrics, "materializer_engine_step_duration_seconds_count")
	stepSec := metricValue(metrics, "materializer_engine_step_duration_seconds_sum")
	applied := metricValue(metrics, "materializer_engine_events_applied_total")
	b.Logf("engine: %.0f steps, %.1f ms and %.0f events per step on average; %.0f%% of the run (the flush included) inside steps",
		steps, 1000*stepSec/steps, applied/steps, 100*stepSec/(elapsed+flush).Seconds())
	s, _ := adminStatus(b, base)
	peak = max(peak, vmHWM(p.cmd.Process.Pid))
	cpu := cpuTime(p.cmd.Process.Pid)
	if !s.Counters.Balanced() || s.Counters.Received != uint64(n) {
		b.Fatalf("counters %+v", s.Counters)
	}
	p.signal(syscall.SIGTERM)
	p.wait(time.Minute)
	b.Logf("daemon memory: peak RSS %d MiB, of which Go runtime (sys) ≤ %d MiB (heap in use ≤ %d MiB); the rest is Pebble's block cache and memtables (C memory)",
		peak>>20, goSys>>20, goHeap>>20)
	return daemonResult{elapsed: elapsed, flush: flush, peakRSS: peak, ratio: s.CompactionRatio, cpu: cpu,
		steady: float64(n90-n10) / at90.Sub(at10).Seconds()}
}

// cpuTime is the user and system CPU time a process used (Linux; clock
// ticks of 1/100 s).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// saveProfiles stores a heap and a 10 s CPU profile of the daemon into dir
// (MATERIALIZER_BENCH_PROFILE=dir), for `go tool pprof`, then a 3 s
// execution trace (`go tool trace -pprof=syscall trace.out` shows where
// the state writer waits).
func saveProfiles(b *testing.B, base, dir string) {
	for _, p := range [][2]string{{"heap.pprof", "/debug/pprof/heap"}, {"cpu.pprof", "/debug/pprof/profile?seconds=10"}, {"trace.out", "/debug/pprof/trace?seconds=3"}} {
		name, path := p[0], p[1]
		code, body := get(b, base+path)
		if code != 200 {
			b.Logf("profile %s: %d", path, code)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			b.Log(err)
		}
	}
}

// metricValue reads one unlabelled metric from Prometheus text.
func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
			return v
		}
	}
	return 0
}
