package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"materializer/conf"
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
	b = append(b, `,"brand":"acme","price":{"amount":"19.99","currency":"EUR"},"description":"`...)
	// Text of words drawn pseudo-randomly: it compresses about like real
	// payloads do (a run of one letter would make Pebble's and the blob
	// files' compression look far better than it is).
	x := uint64(k)<<32 ^ uint64(v) | 1
	for len(b) < size-2 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		w := benchWords[x%uint64(len(benchWords))]
		b = append(b, w[:min(len(w), size-2-len(b))]...)
		if len(b) < size-2 {
			b = append(b, ' ')
		}
	}
	return append(b, `"}`...)
}

var benchWords = strings.Fields(`cotton slim fit shirt dress jacket wool blend navy black white
	red green blue size small medium large extra long sleeve short collar button zip pocket
	stretch denim jeans leather boots sneakers running sport casual formal summer winter
	autumn spring collection limited edition sustainable organic recycled material care
	machine wash cold tumble dry low iron warm return free delivery days stock available`)

func appendHex(b []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	for i := width - 1; i >= 0; i-- {
		b = append(b, digits[(v>>(4*uint(i)))&0xf])
	}
	return b
}

// BenchmarkStep measures the engine's step — decide, the staging-file write
// and the Pebble batch, synced per step, sessions closing as they do in the
// daemon — on one goroutine, so the figure (events/s) is events/s per core
// of the state writer. Keys are drawn uniformly from 1M or 10M; Pebble's
// memtables and block cache and the key cache are sized by the default
// memory budget (daemon.memory_limit = 512MiB); the simulated clock runs at
// 100k events/s, so with a 20 s session gap sessions open and close all the
// time. Run with -benchtime=20000000x: the 10M keys case then reports its
// rate against the 1M keys case of the same run (x_1M_keys); peakRSS_MiB is
// the benchmark process's, with the daemon's runtime settings (TestMain).
//
// In the daemon the workers prepare (parse, extract, validate) each Nakadi
// batch in parallel before the state writer takes it; here the same
// goroutine prepares every step's batches outside the timed step, and
// events/s+prepare is the rate with that time added (one core doing both).
// events/cpu-s divides by all the CPU time the process used, event
// generation and preparing included.
//
// The floor=… runs measure, in the same run and with the same events, the
// two designs the issue measured as floors: a naive Pebble Get+Set per event,
// and blind Sets with an in-memory index of every key's version (memory
// growing with the key count). They neither parse nor validate events: the
// generator hands them key and version.
func BenchmarkStep(b *testing.B) {
	budget := conf.Daemon{MemoryLimit: conf.Bytes(512 << 20), KeyCacheBytes: conf.Bytes(0)}.MemoryBudget()
	for _, keys := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("event=1KB/keys=%dM/budget=512MiB", keys/1_000_000), func(b *testing.B) { benchStep(b, 1000, keys, budget) })
	}
}

// BenchmarkStepFloor runs the floors of BenchmarkStep (see there); -bench
// BenchmarkStep runs both, so their figures come from the same run.
func BenchmarkStepFloor(b *testing.B) {
	for _, size := range []int{500, 1500} {
		b.Run(fmt.Sprintf("event=%dB/keys=1M/design=get+set", size), func(b *testing.B) { benchFloor(b, size, 1_000_000, false) })
		b.Run(fmt.Sprintf("event=%dB/keys=1M/design=blind+index", size), func(b *testing.B) { benchFloor(b, size, 1_000_000, true) })
	}
}

const benchPartitions = 8

// benchLoad generates the benchmark's events: keys drawn uniformly, each
// event a newer version of its key than any before (its sequence number:
// the generator keeps nothing per key, so the process's memory is the
// engine's). Like Nakadi's hash partitioning, a key always lands in the
// same partition (key % partitions), so 1M keys are 1M keys of state.
type benchLoad struct {
	rng     *rand.Rand
	size    int
	keys    int
	seq     int
	offsets [benchPartitions]int
	bytes   int64
}

func newBenchLoad(size, keys int) *benchLoad {
	return &benchLoad{rng: rand.New(rand.NewPCG(1, 2)), size: size, keys: keys}
}

// benchEvt is one generated event with what the floors need to know of it.
type benchEvt struct {
	key, version int
	raw          []byte
}

// next returns n events, both as Nakadi batches of up to 500 events per
// partition (in arrival order) and as a flat list.
func (l *benchLoad) next(n int) ([]*nakadi.Batch, []benchEvt) {
	const batch = 500
	var pending [benchPartitions]*nakadi.Batch
	var batches []*nakadi.Batch
	ship := func(p int) {
		l.offsets[p]++
		pending[p].Cursor.Offset = offset(l.offsets[p])
		batches = append(batches, pending[p])
		pending[p] = nil
	}
	evs := make([]benchEvt, n)
	for i := range evs {
		k := l.rng.IntN(l.keys)
		p := k % benchPartitions
		if pending[p] == nil {
			pending[p] = &nakadi.Batch{StreamID: "s", Cursor: nakadi.Cursor{EventType: "article.updated", Partition: strconv.Itoa(p)}}
		}
		l.seq++
		ev := benchEvent(k, l.seq, l.size)
		l.bytes += int64(len(ev))
		evs[i] = benchEvt{key: k, version: l.seq, raw: ev}
		pending[p].Events = append(pending[p].Events, ev)
		if len(pending[p].Events) == batch {
			ship(p)
		}
	}
	for p := range pending {
		if pending[p] != nil {
			ship(p)
		}
	}
	return batches, evs
}

// stepRates holds the events/s of each BenchmarkStep case (event size,
// keys) run in this process.
var stepRates = map[[2]int]float64{}

// benchStepEvents is how many events one step takes: a consumer's step
// takes what arrived since the last one, up to StepEvents.
const benchStepEvents = 8192

// benchStep runs the engine with the memory budget's Pebble and key cache
// sizes.
func benchStep(b *testing.B, size, keys int, budget conf.Budget) {
	h := newHarness(b)
	h.cacheSize, h.memTable = budget.BlockCache, uint64(budget.MemTableSize)
	h.opts = Options{RollMaxBytes: 256 << 20, RollMaxAge: time.Hour, Compression: "none", MaxUncommitted: 50000,
		KeyCacheBytes: budget.KeyCache}
	args := map[string]string{"key": "article_id", "order": "version", "gap": "20s", "max": "10m", "retention": "168h"}
	h.types = []EventType{testEventType(b, "article.updated", args, []string{
		"article article_id:int version:int brand price:decimal:price.amount occurred_at:timestamp:metadata.occurred_at",
	})}
	h.open()
	defer h.close()
	h.e.trace = nil
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(budget.GoHeap)) // as the daemon starts
	load := newBenchLoad(size, keys)
	var prepared time.Duration
	var p flatten.Parser
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for done := 0; done < b.N; done += benchStepEvents {
		b.StopTimer() // generating events is not the engine's work, nor preparing them (the workers')
		batches, _ := load.next(min(benchStepEvents, b.N-done))
		jobs := make([]*job, len(batches))
		for i, nb := range batches {
			jobs[i] = &job{b: nb, et: h.e.types["article.updated"]}
		}
		t0 := time.Now()
		for _, j := range jobs {
			j.prepare(&p)
		}
		prepared += time.Since(t0)
		b.StartTimer()
		h.clock = h.clock.Add(benchStepEvents * 10 * time.Microsecond) // 100k events/s
		if err := h.e.applyStep(jobs, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportStep(b, load, cpuTime()-cpu0)
	b.ReportMetric(float64(b.N)/(b.Elapsed()+prepared).Seconds(), "events/s+prepare")
	m := h.e.opts.Metrics
	hits, reads := metricValue(m.KeyCacheHits), metricValue(m.KeyStateReads)
	b.ReportMetric(100*hits/(hits+reads), "cache-hit%")
	b.ReportMetric(metricValue(m.SessionsClosed), "sessions-closed")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peakRSS_MiB")
	// The same-run baseline: the step at 1M keys (of the same size), when
	// it ran before in this process.
	rate := float64(b.N) / b.Elapsed().Seconds()
	if base := stepRates[[2]int{size, 1_000_000}]; keys != 1_000_000 && base > 0 {
		b.ReportMetric(rate/base, "x_1M_keys")
	}
	stepRates[[2]int{size, keys}] = rate
	if testing.Verbose() {
		b.Log(h.db.Metrics().String())
	}
}

// benchFloor runs one of the floor designs on the same events as
// benchStep, with Pebble's default options but the same cache and memtable
// sizes as state.Open, one synced batch per step.
func benchFloor(b *testing.B, size, keys int, blind bool) {
	cache := pebble.NewCache(64<<20 + 2*32<<20)
	defer cache.Unref()
	db, err := pebble.Open(b.TempDir(), &pebble.Options{Cache: cache, MemTableSize: 32 << 20, Logger: quietPebble{}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	load := newBenchLoad(size, keys)
	var index map[int]int // blind: every key's newest version
	if blind {
		index = map[int]int{}
	}
	var key, val []byte
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for done := 0; done < b.N; done += benchStepEvents {
		b.StopTimer()
		_, evs := load.next(min(benchStepEvents, b.N-done))
		b.StartTimer()
		batch := db.NewIndexedBatch()
		for _, ev := range evs {
			key = binary.BigEndian.AppendUint64(key[:0], uint64(ev.key))
			if blind {
				if ev.version <= index[ev.key] {
					continue
				}
				index[ev.key] = ev.version
			} else {
				old, closer, err := batch.Get(key)
				switch {
				case err == nil:
					newer := ev.version > int(binary.BigEndian.Uint64(old))
					_ = closer.Close()
					if !newer {
						continue
					}
				case !errors.Is(err, pebble.ErrNotFound):
					b.Fatal(err)
				}
			}
			val = binary.BigEndian.AppendUint64(val[:0], uint64(ev.version))
			val = append(val, ev.raw...)
			if err := batch.Set(key, val, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(pebble.Sync); err != nil {
			b.Fatal(err)
		}
		_ = batch.Close()
	}
	b.StopTimer()
	reportStep(b, load, cpuTime()-cpu0)
}

// reportStep reports events/s, events per CPU-second and the heap in use.
func reportStep(b *testing.B, load *benchLoad, cpu time.Duration) {
	b.SetBytes(load.bytes / int64(b.N))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// On a shared 2-core machine wall time depends on the neighbours; the
	// process's CPU time (the step, Pebble's background work, and the cheap
	// event generation) gives events per CPU-second, the per-core figure.
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heapMiB")
}

// peakRSS is this process's peak resident set size (VmHWM) in bytes.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the CPU time (user+system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
