package nakadi

import (
	"time"

	"materializer/pipeline/jitter"
)

// backoff counts the attempts of jitter.Backoff and waits at least the
// server's Retry-After (itself capped at 5·max).
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next(retryAfter time.Duration) time.Duration {
	b.n++
	return max(jitter.Backoff(b.n, b.min, b.max), min(retryAfter, 5*b.max))
}

func (b *backoff) reset() { b.n = 0 }
