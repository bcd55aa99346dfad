package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"materializer/internal/failpoint"
)

// Crash tests (docs/design.md, docs/development.md "Crash and fault
// tests"): the real binary, built with failpoints and the counter-identity
// check, is killed with SIGKILL — by itself at a named persistence boundary
// or by the test at a random instant — and restarted on the same data dir,
// again and again, while a generated dataset is published to the Nakadi
// emulator. Nakadi resends everything not committed after each kill. At the
// end a flush delivers everything, and the counters, the delivered files
// and the notices must show every event exactly once (crashRig.finish).
//
// The normal suite runs a short plan; MATERIALIZER_CRASH=1 (make crash)
// runs every failpoint at several hit counts and a long series of random
// kills.

// crashKill is one run of a plan: a failpoint and its hit, or (fp == "")
// a SIGKILL after a random delay.
type crashKill struct {
	fp  string
	hit int
}

func (k crashKill) String() string {
	if k.fp == "" {
		return "random"
	}
	return fmt.Sprintf("%s:%d", k.fp, k.hit)
}

// runCrashPlan kills a daemon once per entry of kills, each run with its
// share of the events (random kills up to maxDelay after the start), then
// finishes and checks.
func runCrashPlan(t *testing.T, seed uint64, events int, maxDelay time.Duration, kills []crashKill) {
	start := time.Now()
	r := newCrashRig(t, seed, events, 300)
	defer func() { // also when a check failed: which runs led there
		t.Logf("seed %d (MATERIALIZER_CRASH_SEED): %d events, %d kills, %v\n  %s", seed, events, len(kills),
			time.Since(start).Round(time.Second), strings.Join(r.log, "\n  "))
	}()
	per := events / (len(kills) + 1)
	for _, k := range kills {
		if k.fp == "" {
			r.killAfter(500*time.Millisecond, maxDelay, per)
		} else {
			r.killAtFailpoint(k.fp, k.hit, per)
		}
		if t.Failed() {
			return
		}
	}
	c := r.finish()
	if slices.Contains(kills, crashKill{failpoint.AfterStateCommit, 1}) && c.Redelivered == 0 {
		// Killed after its first step was durable and before any commit:
		// Nakadi must have resent that step's events.
		t.Error("nothing was redelivered: the plan did not test what it should")
	}
}

func crashSeed() uint64 {
	var seed uint64
	if _, err := fmt.Sscan(os.Getenv("MATERIALIZER_CRASH_SEED"), &seed); err == nil {
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// A few kills in the normal suite: before the first Nakadi commit (the
// resume cursor is the subscription's initial one), in the middle of a
// staging-file write, between upload and notice, and at a random instant.
func TestCrashShort(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the real binary: not in -short")
	}
	runCrashPlan(t, crashSeed(), 1600, 3*time.Second, []crashKill{
		{failpoint.AfterStateCommit, 1},
		{failpoint.MidFileWrite, 3},
		{failpoint.AfterUpload, 2},
		{"", 0},
	})
}

// The long matrix (make crash): every failpoint at several hit counts, one
// data dir per failpoint, then a long series of random kills on one data
// dir.
func TestCrashMatrix(t *testing.T) {
	if os.Getenv("MATERIALIZER_CRASH") == "" {
		t.Skip("set MATERIALIZER_CRASH=1 (make crash)")
	}
	seed := crashSeed()
	for i, fp := range []string{failpoint.BeforeStateCommit, failpoint.AfterStateCommit, failpoint.MidFileWrite,
		failpoint.AfterUpload, failpoint.AfterNotice} {
		t.Run(fp, func(t *testing.T) {
			var kills []crashKill
			for _, hit := range []int{1, 2, 3, 5, 8} {
				kills = append(kills, crashKill{fp, hit})
			}
			runCrashPlan(t, seed+uint64(i), 6000, 0, kills)
		})
	}
	t.Run("random", func(t *testing.T) {
		kills := make([]crashKill, 20)
		runCrashPlan(t, seed+100, 12000, 6*time.Second, kills)
	})
}
