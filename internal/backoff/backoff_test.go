package backoff

import (
	"context"
	"testing"
	"time"
)

// TestDelayProperties checks what callers rely on, not the formula: every
// delay lies in [lo/2, hi], delays never shrink on average as attempts
// grow, the cap is reached and held, and delays of one attempt spread
// (retries of many clients must not line up).
func TestDelayProperties(t *testing.T) {
	lo, hi := 200*time.Millisecond, 30*time.Second
	const samples = 400
	prevMean := time.Duration(0)
	for attempt := -1; attempt < 100; attempt++ {
		var sum, least, most time.Duration
		least = hi + 1
		for range samples {
			d := Delay(attempt, lo, hi)
			if d < lo/2 || d > hi {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, lo/2, hi)
			}
			sum += d
			least, most = min(least, d), max(most, d)
		}
		mean := sum / samples
		if mean < prevMean*9/10 {
			t.Errorf("attempt %d: mean delay %v fell below the previous attempt's %v", attempt, mean, prevMean)
		}
		prevMean = mean
		if most-least < most/5 {
			t.Errorf("attempt %d: delays do not spread: [%v, %v]", attempt, least, most)
		}
		if attempt >= 20 && least < hi/2 {
			t.Errorf("attempt %d: capped delay %v below hi/2", attempt, least)
		}
	}
}

func TestBackoffCountsAndHonoursRetryAfter(t *testing.T) {
	b := &Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}
	for i := 1; i <= 3; i++ {
		if d := b.Next(0); d <= 0 || d > b.Max {
			t.Fatalf("attempt %d: %v", i, d)
		}
	}
	if b.Attempts() != 3 {
		t.Fatalf("attempts %d, want 3", b.Attempts())
	}
	if d := b.Next(time.Second); d != 50*time.Millisecond {
		t.Fatalf("Retry-After of 1s: %v, want the cap 5·Max = 50ms", d)
	}
	if d := b.Next(20 * time.Millisecond); d != 20*time.Millisecond {
		t.Fatalf("Retry-After of 20ms: %v", d)
	}
	b.Reset()
	if b.Attempts() != 0 {
		t.Fatal("Reset kept the attempts")
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full hour on a cancelled context")
	}
	if !Sleep(context.Background(), time.Microsecond) {
		t.Fatal("Sleep of 1µs did not report completion")
	}
}
