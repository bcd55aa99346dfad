package nakadi

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with jitter: attempt n waits a
// random duration in [d/2, d] with d = min(max, min·2ⁿ), and at least the
// server's Retry-After (itself capped at 5·max).
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next(retryAfter time.Duration) time.Duration {
	d := b.max
	if b.n < 32 && b.min<<b.n < b.max && b.min<<b.n > 0 {
		d = b.min << b.n
	}
	b.n++
	wait := d/2 + rand.N(d/2+1)
	return max(wait, min(retryAfter, 5*b.max))
}

func (b *backoff) reset() { b.n = 0 }
