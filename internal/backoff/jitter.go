// Package jitter computes retry delays: capped exponential backoff with
// "equal jitter", shared by every client that retries (Nakadi, S3, NATS).
package jitter

import (
	"math/rand/v2"
	"time"
)

// Backoff is the delay before retry number attempt (1 for the first): a
// uniformly random duration in [d/2, d] with d = min(hi, lo·2^(attempt-1)).
// The randomness spreads the retries of many clients after an outage.
func Backoff(attempt int, lo, hi time.Duration) time.Duration {
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
