package pipeline

import (
	"runtime/metrics"

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
	GoHeap     int64 `json:"go_heap_bytes"`     // heap objects (live and not yet collected)
	GoTotal    int64 `json:"go_total_bytes"`    // all memory the Go runtime has mapped and not released
	BlockCache int64 `json:"block_cache_bytes"` // Pebble's block cache (memtables included: they are reserved in it)
	MemTables  int64 `json:"memtables_bytes"`   // Pebble's memtables
	KeyCache   int64 `json:"key_cache_bytes"`   // the key cache's ring, as far as written
}

// memoryInUse reads what each part of the budget holds.
func (p *Pipeline) memoryInUse() MemoryInUse {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(sample)
	m := MemoryInUse{GoHeap: int64(sample[0].Value.Uint64()), GoTotal: int64(sample[1].Value.Uint64() - sample[2].Value.Uint64())}
	if p.recovered.Load() {
		pm := p.db.Metrics()
		m.BlockCache, m.MemTables = pm.BlockCache.Size, int64(pm.MemTable.Size)
		m.KeyCache = p.eng.KeyCacheBytes()
	}
	return m
}

// memoryCollector exports the budget and its use.
type memoryCollector struct{ p *Pipeline }

var (
	memoryLimitDesc  = prometheus.NewDesc("materializer_memory_limit_bytes", "daemon.memory_limit: the memory budget of the process.", nil, nil)
	memoryBudgetDesc = prometheus.NewDesc("materializer_memory_budget_bytes",
		"The share of daemon.memory_limit each part may hold (go_heap is Go's soft memory limit, GOMEMLIMIT).", []string{"part"}, nil)
	memoryInUseDesc = prometheus.NewDesc("materializer_memory_in_use_bytes",
		"What each part of the memory budget holds now (compare process_resident_memory_bytes with the limit).", []string{"part"}, nil)
)

func (c memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- memoryLimitDesc
	ch <- memoryBudgetDesc
	ch <- memoryInUseDesc
}

func (c memoryCollector) Collect(ch chan<- prometheus.Metric) {
	b, u := c.p.budget, c.p.memoryInUse()
	ch <- prometheus.MustNewConstMetric(memoryLimitDesc, prometheus.GaugeValue, float64(b.Limit))
	for part, v := range map[string]int64{"memtables": b.MemTables, "block_cache": b.BlockCache, "key_cache": b.KeyCache, "go_heap": b.GoHeap, "reserve": b.Reserve} {
		ch <- prometheus.MustNewConstMetric(memoryBudgetDesc, prometheus.GaugeValue, float64(v), part)
	}
	for part, v := range map[string]int64{"memtables": u.MemTables, "block_cache": u.BlockCache, "key_cache": u.KeyCache, "go_heap": u.GoHeap, "go_total": u.GoTotal} {
		ch <- prometheus.MustNewConstMetric(memoryInUseDesc, prometheus.GaugeValue, float64(v), part)
	}
}
