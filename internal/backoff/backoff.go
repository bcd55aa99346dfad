// Package backoff computes retry delays: capped exponential backoff with
// "equal jitter". Every retry loop of materializer uses it — the Nakadi,
// S3 and NATS clients, the outbox, the state writer's step retries and the
// notice-stream set-up — so an outage is retried the same way everywhere.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the delay before retry number attempt (1 for the first): a
// uniformly random duration in [d/2, d] with d = min(hi, lo·2^(attempt-1)).
// The randomness spreads the retries of many clients after an outage.
func Delay(attempt int, lo, hi time.Duration) time.Duration {
	d := hi
	attempt = max(attempt, 1)
	if attempt < 40 {
		if e := lo << (attempt - 1); e > 0 && e < hi {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Backoff counts the attempts of one retry loop. The zero value is not
// usable: set Min and Max.
type Backoff struct {
	Min, Max time.Duration
	attempts int
}

// Next counts an attempt and returns the delay before the next one, at
// least atLeast (a server's Retry-After, capped at 5·Max).
func (b *Backoff) Next(atLeast time.Duration) time.Duration {
	b.attempts++
	return max(Delay(b.attempts, b.Min, b.Max), min(atLeast, 5*b.Max))
}

// Attempts is the number of attempts counted since the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempts = 0 }

// Sleep waits d or until ctx ends; it reports whether the whole d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
