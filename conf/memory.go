package conf

import "fmt"

// Budget is how daemon.memory_limit is split among what holds memory for
// long. Pebble's memtables and block cache and the key cache live outside
// the Go heap; GoHeap becomes Go's soft memory limit (GOMEMLIMIT), which
// covers the heap, goroutine stacks and the consumers' and staging files'
// buffers; Reserve is not given out (allocator slack, thread stacks).
type Budget struct {
	Limit        int64 `json:"limit_bytes"`
	MemTableSize int64 `json:"memtable_size_bytes"`
	MemTables    int64 `json:"memtables_bytes"` // MemTableSize × MemTablesInMemory
	BlockCache   int64 `json:"block_cache_bytes"`
	KeyCache     int64 `json:"key_cache_bytes"`
	GoHeap       int64 `json:"go_heap_bytes"`
	Reserve      int64 `json:"reserve_bytes"`
}

// MemTablesInMemory is how many memtables Pebble may hold (one being
// written, the others flushing) before it stops writes.
const MemTablesInMemory = 3

// KeyCacheBytesPerKey is what the key cache takes per key, about (a
// numeric key, a UUID eid).
const KeyCacheBytesPerKey = 100

// MemoryBudget splits daemon.memory_limit: an eighth stays in reserve,
// memtables get a sixteenth each (at most 64 MiB), the block cache an
// eighth, the key cache a quarter (or daemon.key_cache_bytes when set), and
// Go's heap the rest.
func (d Daemon) MemoryBudget() Budget {
	l := d.MemoryLimit.Bytes()
	b := Budget{Limit: l, Reserve: l / 8, BlockCache: l / 8, KeyCache: l / 4}
	b.MemTableSize = min(max(l/16, 4<<20), 64<<20)
	b.MemTables = MemTablesInMemory * b.MemTableSize
	if k := d.KeyCacheBytes.Bytes(); k > 0 {
		b.KeyCache = k
	}
	b.GoHeap = l - b.Reserve - b.BlockCache - b.KeyCache - b.MemTables
	return b
}

// String is the split as `check` prints it.
func (b Budget) String() string {
	return fmt.Sprintf("memory %s = Pebble memtables %s (%d × %s) + block cache %s + key cache %s (~%s keys) + Go heap %s + reserve %s",
		Bytes(b.Limit), Bytes(b.MemTables), MemTablesInMemory, Bytes(b.MemTableSize), Bytes(b.BlockCache),
		Bytes(b.KeyCache), approx(b.KeyCache/KeyCacheBytesPerKey), Bytes(b.GoHeap), Bytes(b.Reserve))
}

// approx renders a count as 1.3M, 160k.
func approx(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
