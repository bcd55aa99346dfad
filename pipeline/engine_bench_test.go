package pipeline

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
)

// benchEvent makes an event of about size bytes for key k at version v.
func benchEvent(k, v, size int) []byte {
	b := make([]byte, 0, size+64)
	b = append(b, `{"metadata":{"eid":"`...)
	b = appendHex(b, uint64(k), 8)
	b = append(b, "-0000-4000-8000-"...)
	b = appendHex(b, uint64(v), 12)
	b = append(b, `","occurred_at":"2026-11-21T12:00:00.123Z"},"article_id":`...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(v), 10)
	b = append(b, `,"brand":"acme","price":{"amount":"19.99","currency":"EUR"},"blob":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

func appendHex(b []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	for i := width - 1; i >= 0; i-- {
		b = append(b, digits[(v>>(4*uint(i)))&0xf])
	}
	return b
}

// BenchmarkStep measures the engine's whole step — prepare (parse, extract,
// validate), decide, Pebble batch synced per step — on one goroutine, so the
// figure is events/s per core. Keys are drawn uniformly from -keys; run with
// -benchtime=10000000x for the 10M-event figure of the README.
func BenchmarkStep(b *testing.B) {
	for _, size := range []int{500, 1500} {
		b.Run(fmt.Sprintf("event=%dB/keys=1M", size), func(b *testing.B) { benchStep(b, size, 1_000_000) })
	}
}

func benchStep(b *testing.B, size, keys int) {
	h := newHarness(b)
	h.cacheSize, h.memTable = 0, 0 // production defaults
	h.opts = Options{RollMaxBytes: 256 << 20, RollMaxAge: time.Hour, Compression: "none", MaxUncommitted: 50000}
	args := map[string]string{"key": "article_id", "order": "version", "gap": "120s", "max": "1800s", "retention": "168h"}
	h.types = []EventType{testEventType(b, "article.updated", args, []string{
		"article article_id:int version:int brand price:decimal:price.amount occurred_at:timestamp:metadata.occurred_at",
	})}
	h.open()
	defer h.close()
	h.e.trace = nil
	rng := rand.New(rand.NewPCG(1, 2))
	versions := make([]int32, keys)
	const batch = 500
	const perStep = 8192
	var p flatten.Parser
	var bytes int64
	offset := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for done := 0; done < b.N; {
		b.StopTimer() // generating events is not the engine's work
		var jobs []*job
		for n := 0; n < perStep && done < b.N; {
			nb := &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article.updated", Partition: strconv.Itoa(offset % 8)}}
			for i := 0; i < batch && done < b.N; i++ {
				k := rng.IntN(keys)
				versions[k]++
				ev := benchEvent(k, int(versions[k]), size)
				bytes += int64(len(ev))
				nb.Events = append(nb.Events, ev)
				n++
				done++
			}
			offset++
			nb.Cursor.Offset = fmt.Sprintf("001-0001-%018d", offset)
			jobs = append(jobs, &job{b: nb, et: h.e.types["article.updated"]})
		}
		b.StartTimer()
		for _, j := range jobs {
			j.prepare(&p)
		}
		h.clock = h.clock.Add(10 * time.Millisecond)
		if err := h.e.applyStep(jobs, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	b.SetBytes(bytes / int64(b.N))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// On a shared 2-core machine wall time depends on the neighbours; the
	// process's CPU time (the engine, Pebble's background work, and the
	// cheap event generation) gives events per CPU-second, the per-core
	// figure.
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heapMiB")
	if testing.Verbose() {
		b.Log(h.db.Metrics().String())
	}
}

// cpuTime is the CPU time (user+system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
