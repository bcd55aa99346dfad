package main

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"materializer/internal/articles"
	"materializer/pipeline/nakadi/emulator"
)

// randomBatches splits n events into batches of 1 to 60, drawn from rng.
func randomBatches(rng *rand.Rand, n int) []int {
	sizes := make([]int, 0, 16)
	for i := 0; i < n; {
		k := min(1+rng.IntN(60), n-i)
		sizes = append(sizes, k)
		i += k
	}
	return sizes
}

// publishPaced publishes events[from:] to article.updated in batches of
// sizes, sleeping pauses[k] after batch k, as producers would, and stores
// how many events are out in published after each batch. The sizes and
// pauses are drawn by the caller, on its goroutine: the rigs' rngs are not
// safe for concurrent use, and a seeded run must draw the same numbers.
// The channel closes when all are out (or publishing failed, reported to t).
func publishPaced(t testing.TB, nk *emulator.Server, events []articles.Event, published *atomic.Int64, from int, sizes []int, pauses []time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		i := from
		for k, size := range sizes {
			raw := make([][]byte, 0, size)
			for _, a := range events[i : i+size] {
				raw = append(raw, a.Raw)
			}
			if err := nk.Publish("article.updated", raw...); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			i += size
			published.Store(int64(i))
			time.Sleep(pauses[k]) // pacing the producer, not waiting for a result
		}
	}()
	return done
}
