package jitter

import (
	"testing"
	"time"
)

func TestBackoffStaysInItsBand(t *testing.T) {
	lo, hi := 200*time.Millisecond, 30*time.Second
	for attempt := -1; attempt < 100; attempt++ {
		d := hi
		if a := max(attempt, 1); a < 20 && lo<<(a-1) < hi { // 200ms·2^19 > 30s: no overflow here
			d = lo << (a - 1)
		}
		for range 50 {
			if got := Backoff(attempt, lo, hi); got < d/2 || got > d {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, got, d/2, d)
			}
		}
	}
}
