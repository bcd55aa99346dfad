package engine

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"
	"testing"
)

// TestMain gives benchmarks the runtime settings the daemon gives itself,
// so that their peak RSS compares with daemon.memory_limit: two glibc malloc
// arenas for Pebble's C memory (daemon/malloc_linux.go; glibc fixes them when
// the process starts, so the benchmark binary starts itself again with
// MALLOC_ARENA_MAX=2), GOGC=50, and Go's soft limit at the heap's share
// (benchStep).
func TestMain(m *testing.M) {
	flag.Parse()
	if b := flag.Lookup("test.bench"); b != nil && b.Value.String() != "" && os.Getenv("MALLOC_ARENA_MAX") == "" {
		err := syscall.Exec("/proc/self/exe", os.Args, append(os.Environ(), "MALLOC_ARENA_MAX=2"))
		fmt.Fprintln(os.Stderr, "restart with MALLOC_ARENA_MAX=2:", err)
		os.Exit(1)
	}
	if b := flag.Lookup("test.bench"); b != nil && b.Value.String() != "" && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	os.Exit(m.Run())
}
