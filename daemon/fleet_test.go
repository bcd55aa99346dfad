package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// Fleet tests (docs/fleet.md): several real daemons on one subscription,
// members added, stopped, killed and drained while events are published;
// at the end nothing is lost, nothing is delivered twice but in the ways
// docs/design.md allows around a partition move, and every file is
// announced exactly once (fleetRig.finish, e2etest.CheckFleet).

// TestFleet is the short version (make test): each operation once, on one
// fleet, in this order.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four daemons: not in -short")
	}
	seed := crashSeed()
	r := newFleetRig(t, seed, 3000, 200)
	defer func() { t.Logf("seed %d (MATERIALIZER_CRASH_SEED)\n  %s", seed, strings.Join(r.log, "\n  ")) }()
	m1, m2, m3 := r.add(), r.add(), r.add()
	steps := []struct {
		name string
		run  func()
	}{
		{"three daemons: partitions spread", func() {
			r.start(m1)
			r.start(m2)
			r.start(m3)
			<-r.publishAsync(600, time.Second)
			r.waitOwners("three members", r.evenly)
		}},
		{"a fourth joins: partitions move", func() {
			pub := r.publishAsync(600, 2*time.Second)
			r.start(r.add())
			r.waitOwners("four members", r.evenly)
			<-pub
		}},
		{"SIGTERM one member: its partitions move, its data dir is empty", func() {
			pub := r.publishAsync(600, 2*time.Second)
			r.stop(m2)
			m2.left = true
			r.waitOwners("m2 stopped", r.evenly)
			<-pub
		}},
		{"kill -9 one member, restart it later", func() {
			pub := r.publishAsync(600, 2*time.Second)
			r.kill(m3)
			r.waitOwners("m3 killed", r.evenly)
			<-pub
			r.start(m3)
			r.waitOwners("m3 back", r.evenly)
		}},
		{"drain one member: it ends idle, the others own everything", func() {
			r.drain(m1)
			r.waitOwners("m1 drained", func(o map[string]int) bool { return o["m1"] == 0 && r.evenly(o) })
		}},
		{"nothing is lost", r.finish},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { r.setT(t); s.run() }) {
			return
		}
	}
}

// TestFleetMatrix (make crash): a seeded random series of joins, stops,
// kills, restarts, drains and undrains over more events, then the same
// checks.
func TestFleetMatrix(t *testing.T) {
	if os.Getenv("MATERIALIZER_CRASH") == "" {
		t.Skip("set MATERIALIZER_CRASH=1 (make crash)")
	}
	seed := crashSeed()
	r := newFleetRig(t, seed, 20000, 500)
	defer func() { t.Logf("seed %d (MATERIALIZER_CRASH_SEED)\n  %s", seed, strings.Join(r.log, "\n  ")) }()
	for range 3 {
		r.start(r.add())
	}
	const ops = 30
	per := len(r.events) / (ops + 1)
	for range ops {
		pub := r.publishAsync(per, 2*time.Second)
		r.randomOp()
		<-pub
		if t.Failed() {
			return
		}
	}
	for _, m := range r.members { // killed members come back: they hold what they applied
		if !m.running && !m.left {
			r.start(m)
		}
	}
	r.finish()
}

// randomOp changes the fleet once, picking among the changes possible
// now: a member joins (at most five run), leaves by SIGTERM, is killed,
// comes back after a kill, is drained or undrained. At least one live
// member is kept.
func (r *fleetRig) randomOp() {
	r.t.Helper()
	var running, killed, drained []*member
	for _, m := range r.members {
		switch {
		case m.running && m.drained:
			drained = append(drained, m)
			running = append(running, m)
		case m.running:
			running = append(running, m)
		case !m.left:
			killed = append(killed, m)
		}
	}
	live := r.live()
	pick := func(ms []*member) *member { return ms[r.rng.IntN(len(ms))] }
	var ops []func()
	if len(running) < 5 {
		ops = append(ops, func() { r.start(r.add()) })
	}
	if len(live) > 1 {
		ops = append(ops,
			func() { m := pick(live); r.stop(m); m.left = true },
			func() { r.kill(pick(live)) },
			func() { r.drain(pick(live)) })
	}
	if len(killed) > 0 {
		ops = append(ops, func() { r.start(pick(killed)) })
	}
	if len(drained) > 0 {
		ops = append(ops, func() { r.undrain(pick(drained)) })
	}
	ops[r.rng.IntN(len(ops))]()
	r.waitOwners("after the change", r.evenly)
}
