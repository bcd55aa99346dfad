package pipeline

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"materializer/conf"
)

// MemoryStatus is the memory part of GET /v1/status: the budget and what
// is in use against it.
type MemoryStatus struct {
	Budget conf.Budget `json:"budget"`
	InUse  MemoryInUse `json:"in_use"`
}

// MemoryInUse is what each part holds now.
type MemoryInUse struct {
	Resident   int64 `json:"resident_bytes"`    // the process's resident set size: compare it with the limit
	GoHeap     int64 `json:"go_heap_bytes"`     // heap objects (live and not yet collected)
	GoTotal    int64 `json:"go_total_bytes"`    // all memory the Go runtime has mapped and not released
	BlockCache int64 `json:"block_cache_bytes"` // the blocks in Pebble's block cache (its memtables are counted apart)
	MemTables  int64 `json:"memtables_bytes"`   // Pebble's memtables
	KeyCache   int64 `json:"key_cache_bytes"`   // the key cache's ring, as far as written
	// ConsumerBatches is what batches read from Nakadi and not yet handed
	// to the engine hold (part of GoHeap); ConsumerWaitSeconds how long
	// streams waited, in all, because that budget was spent.
	ConsumerBatches     int64   `json:"consumer_batches_bytes"`
	ConsumerWaitSeconds float64 `json:"consumer_batches_wait_seconds"`
	// GoLimit is Go's soft memory limit now (GOMEMLIMIT; governMemory).
	GoLimit int64 `json:"go_limit_bytes"`
}

// goMemory reads the process's resident size, Go's heap objects and all
// the memory the Go runtime holds (not released to the OS).
func goMemory() (resident, goHeap, goTotal int64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(sample)
	resident, _ = residentBytes()
	return resident, int64(sample[0].Value.Uint64()), int64(sample[1].Value.Uint64() - sample[2].Value.Uint64())
}

// memoryInUse reads what each part of the budget holds.
func (p *Pipeline) memoryInUse() MemoryInUse {
	m := MemoryInUse{ConsumerBatches: p.buffers.InUse(), ConsumerWaitSeconds: p.buffers.Waited().Seconds(), GoLimit: debug.SetMemoryLimit(-1)}
	m.Resident, m.GoHeap, m.GoTotal = goMemory()
	if p.recovered.Load() {
		pm := p.db.Metrics()
		m.BlockCache, m.MemTables = pm.BlockCache.Size, int64(pm.MemTable.Size)
		m.KeyCache = p.eng.KeyCacheBytes()
	}
	return m
}

// governMemory keeps Go's soft memory limit (GOMEMLIMIT) at what the budget
// leaves the Go runtime now: daemon.memory_limit less half the reserve and
// less what the process holds outside the Go runtime (its resident size
// less Go's memory: Pebble's memtables and block cache, the key cache, the
// binary, C allocations) — never less than the heap's own share
// (Budget.GoHeap). A part that does not use its share lends it to the heap:
// a daemon with a thousand event types and few keys holds more heap than
// keys, and would otherwise spend its CPU on garbage collection; as the key
// cache and Pebble fill, the heap's limit falls back to its share. The other
// half of the reserve absorbs what grows between two looks (a second).
func (p *Pipeline) governMemory(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	b := p.budget
	for {
		if resident, _, goTotal := goMemory(); resident > 0 {
			debug.SetMemoryLimit(max(b.GoHeap, b.Limit-b.Reserve/2-max(0, resident-goTotal)))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// residentBytes is the process's resident set size (Linux).
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()), err == nil
}

// memoryCollector exports the budget and its use.
type memoryCollector struct{ p *Pipeline }

var (
	memoryLimitDesc  = prometheus.NewDesc("materializer_memory_limit_bytes", "daemon.memory_limit: the memory budget of the process.", nil, nil)
	memoryBudgetDesc = prometheus.NewDesc("materializer_memory_budget_bytes",
		"The share of daemon.memory_limit each part may hold (go_heap is Go's soft memory limit, GOMEMLIMIT).", []string{"part"}, nil)
	memoryInUseDesc = prometheus.NewDesc("materializer_memory_in_use_bytes",
		"What each part of the memory budget holds now (compare process_resident_memory_bytes with the limit).", []string{"part"}, nil)
	consumerWaitDesc = prometheus.NewDesc("materializer_memory_consumer_batches_wait_seconds_total",
		"How long Nakadi streams waited, in all, to read a line because batches read and not yet applied held their whole budget.", nil, nil)
)

func (c memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- memoryLimitDesc
	ch <- memoryBudgetDesc
	ch <- memoryInUseDesc
	ch <- consumerWaitDesc
}

func (c memoryCollector) Collect(ch chan<- prometheus.Metric) {
	b, u := c.p.budget, c.p.memoryInUse()
	ch <- prometheus.MustNewConstMetric(memoryLimitDesc, prometheus.GaugeValue, float64(b.Limit))
	for part, v := range map[string]int64{"memtables": b.MemTables, "block_cache": b.BlockCache, "key_cache": b.KeyCache, "go_heap": b.GoHeap,
		"consumer_batches": b.ConsumerBatches, "reserve": b.Reserve} {
		ch <- prometheus.MustNewConstMetric(memoryBudgetDesc, prometheus.GaugeValue, float64(v), part)
	}
	for part, v := range map[string]int64{"memtables": u.MemTables, "block_cache": u.BlockCache, "key_cache": u.KeyCache, "go_heap": u.GoHeap,
		"go_total": u.GoTotal, "go_limit": u.GoLimit, "consumer_batches": u.ConsumerBatches} {
		ch <- prometheus.MustNewConstMetric(memoryInUseDesc, prometheus.GaugeValue, float64(v), part)
	}
	ch <- prometheus.MustNewConstMetric(consumerWaitDesc, prometheus.CounterValue, u.ConsumerWaitSeconds)
}
