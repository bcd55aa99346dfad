package pipeline_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"materializer/conf"
	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/pipeline"
	"materializer/pipeline/nakadi/emulator"
	"materializer/state"
)

// Redelivery is recognized, not re-applied. The same events
// go once through a pipeline that sees no fault, and once through one whose
// Nakadi resends what it had already applied: duplicated batches, streams
// cut or closed (with and without the closing window), forced commit
// timeouts, and restarts with another batch_limit, so the resent batches
// end at other offsets than the applied ones and straddle the durable
// cursor. The outcome must not change: the same counters (but for
// redelivered), the same newest main row per article, the same correction
// and rejected rows, every event counted once.
func TestRedeliveryIsSkippedExactly(t *testing.T) {
	events := e2etest.Generate(uint64(time.Now().UnixNano()), 200, 3000)
	ref := runRD(t, events, false)
	got := runRD(t, events, true)
	t.Logf("reference %+v\nwith faults %+v (%v lost partitions)", ref.counters, got.counters, got.lost)

	if got.counters.Redelivered == 0 {
		t.Error("nothing was redelivered: the faults did not bite")
	}
	if got.mismatches != 0 {
		t.Errorf("%v redeliveries did not match the recent batches (skipped by whole batches instead of counting)", got.mismatches)
	}
	want, have := ref.counters, got.counters
	want.Redelivered, have.Redelivered = 0, 0
	if got.lost > 0 { // a lost partition closes its sessions early: more sessions, same events
		want.Main, want.Superseded, have.Main, have.Superseded = 0, want.Main+want.Superseded, 0, have.Main+have.Superseded
	}
	if have != want || !got.counters.Balanced() || got.counters.Open != 0 {
		t.Errorf("counters with faults %+v, without %+v", got.counters, ref.counters)
	}
	rdCompare(t, "newest main row per article", rdNewestMain(t, ref.files), rdNewestMain(t, got.files))
	rdCompare(t, "correction rows", rdRowsOf(t, ref.files, "correction"), rdRowsOf(t, got.files, "correction"))
	rdCompare(t, "rejected events", rdRowsOf(t, ref.files, "rejected"), rdRowsOf(t, got.files, "rejected"))
	e2etest.CheckDelivered(t, got.files, e2etest.Expect(events))
}

// rdRun is the outcome of one pipeline run over the events.
type rdRun struct {
	counters         state.Counters
	files            []e2etest.File
	mismatches, lost float64
}

// runRD runs the events through a fresh pipeline, with or without
// faults, and flushes.
func runRD(t *testing.T, events []articles.Event, faults bool) rdRun {
	t.Helper()
	nk := e2etest.ArticleEmulator(t, 3)
	dir := t.TempDir()
	_, cfg := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nk.URL(), NATSURL: natstest.Start(t).URL()})
	cfg.Nakadi.MaxUncommittedEvents = 400
	cfg.Nakadi.CommitTimeout = conf.Dur(4 * time.Second) // a closing window is over soon
	// A restart keeps the open sessions (no handover), so the restarted
	// pipeline resumes behind what it applied and the outcome can be
	// compared with the run without faults.
	cfg.Daemon.OnStop = conf.OnStopKeep
	f := &rdFaults{t: t, nk: nk, cfg: cfg, rng: rand.New(rand.NewPCG(uint64(len(events)), 7))}
	f.p = startRDPipe(t, cfg)
	if faults {
		f.run(events)
	} else {
		e2etest.Publish(t, nk, events)
	}
	e2etest.WaitFor(t, 90*time.Second, "every event received", func() bool { return f.p.counters(t).Received >= uint64(len(events)) })
	e2etest.Flush(t, f.p.p)
	out := rdRun{counters: f.p.counters(t)}
	f.p.stop()
	out.mismatches = f.mismatches + f.p.metric(t, "redelivery_mismatch_total")
	out.lost = f.lost + f.p.metric(t, "partitions_lost_total")
	out.files = e2etest.ReadDelivered(t, filepath.Join(dir, "storage"))
	return out
}

// rdFaults publishes the events in parts and, between the parts, makes
// Nakadi resend what the pipeline applied.
type rdFaults struct {
	t                *testing.T
	nk               *emulator.Server
	cfg              *conf.Config
	p                *rdPipe
	rng              *rand.Rand
	mismatches, lost float64 // of pipelines stopped before
}

func (f *rdFaults) run(events []articles.Event) {
	faults := []func(){
		// Early, before the first commit: Nakadi resends from the
		// subscription's initial cursor.
		func() { f.endStream(func(sid string) error { return f.nk.ForceCommitTimeout(sid) }) },
		f.duplicateBatches,
		f.restart,
		func() { f.endStream(func(sid string) error { return f.nk.CloseStream(sid, true) }) },
		f.cutNextStream,
		f.restart,
		func() { f.endStream(func(sid string) error { return f.nk.CloseStream(sid, false) }) },
		f.restart,
	}
	// The first commit is answered after 6 s: the first fault then surely
	// finds applied events beyond the committed cursor, so Nakadi resends
	// some (otherwise a fast commit could leave nothing to resend in any
	// fault, and the test would prove nothing).
	f.nk.DelayNext(emulator.RouteCommit, 1, 6*time.Second)
	per := len(events) / (len(faults) + 1)
	for i, fault := range faults {
		part := events[i*per : (i+1)*per]
		for len(part) > 0 { // small publishes: the pipeline reads while they come
			k := min(1+f.rng.IntN(40), len(part))
			e2etest.Publish(f.t, f.nk, part[:k])
			part = part[k:]
		}
		// Let the pipeline apply (part of) it, so Nakadi's committed cursor
		// is behind the applied one when the fault hits.
		target := uint64((i + 1) * per / 2)
		e2etest.WaitFor(f.t, 60*time.Second, "events applied", func() bool { return f.p.counters(f.t).Received >= target })
		fault()
	}
	e2etest.Publish(f.t, f.nk, events[len(faults)*per:])
}

// duplicateBatches makes Nakadi send the next batch of every partition twice.
func (f *rdFaults) duplicateBatches() {
	for p := range 3 {
		f.nk.DuplicateNextBatch("article.updated", p)
	}
}

// endStream ends the current stream with end (Nakadi resends what was not
// committed to the next one).
func (f *rdFaults) endStream(end func(sid string) error) {
	subs := f.nk.Subscriptions()
	if len(subs) != 1 {
		f.t.Fatalf("subscriptions %v", subs)
	}
	var sids []string
	e2etest.WaitFor(f.t, 30*time.Second, "a stream", func() bool { sids = f.nk.Streams(subs[0]); return len(sids) > 0 })
	if err := end(sids[len(sids)-1]); err != nil {
		f.t.Fatal(err)
	}
}

// cutNextStream cuts the next stream after a few events, then ends the
// current one so that the next one opens.
func (f *rdFaults) cutNextStream() {
	f.nk.CutNextStreamAfter(1 + f.rng.IntN(60))
	f.endStream(func(sid string) error { return f.nk.ForceCommitTimeout(sid) })
}

// restart stops the pipeline (it commits what is durable) and starts it
// again on the same data dir with another batch_limit.
func (f *rdFaults) restart() {
	f.p.stop()
	f.mismatches += f.p.metric(f.t, "redelivery_mismatch_total")
	f.lost += f.p.metric(f.t, "partitions_lost_total")
	f.cfg.Nakadi.BatchLimit = []int{7, 23, 64, 150}[f.rng.IntN(4)]
	f.p = startRDPipe(f.t, f.cfg)
}

// rdPipe is a pipeline running in this process that the test can stop.
type rdPipe struct {
	p    *pipeline.Pipeline
	reg  *prometheus.Registry
	stop func()
}

func startRDPipe(t *testing.T, cfg *conf.Config) *rdPipe {
	t.Helper()
	p := &rdPipe{reg: prometheus.NewRegistry()}
	p.p, p.stop = e2etest.StartPipeline(t, cfg, p.reg)
	return p
}

func (p *rdPipe) counters(t *testing.T) state.Counters { return status(t, p.p).Counters }

// metric sums the values of the metric whose name ends with suffix.
func (p *rdPipe) metric(t *testing.T, suffix string) float64 {
	t.Helper()
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if strings.HasSuffix(mf.GetName(), suffix) {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// rdNewestMain maps each article to its newest main row (the DWH's merge:
// newest ordering value wins).
func rdNewestMain(t *testing.T, files []e2etest.File) map[string]int {
	t.Helper()
	newest := map[int][]string{}
	for _, f := range files {
		if f.Kind != "main" || f.Table != "article" {
			continue
		}
		ai, vi := f.Column(t, "article_id"), f.Column(t, "version")
		for _, r := range f.Rows {
			id, _ := strconv.Atoi(r[ai])
			if prev := newest[id]; prev == nil || rdVersion(r[vi]) > rdVersion(prev[vi]) {
				newest[id] = r
			}
		}
	}
	out := map[string]int{}
	for _, r := range newest {
		out[strings.Join(r, ",")]++
	}
	return out
}

func rdVersion(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// rdRowsOf counts the rows of one kind over every table; a rejected row is
// named by its event's eid (the raw event carries Nakadi's received_at,
// which differs between runs).
func rdRowsOf(t *testing.T, files []e2etest.File, kind string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, f := range files {
		if f.Kind != kind {
			continue
		}
		for _, r := range f.Rows {
			key := f.Table + ":" + strings.Join(r, ",")
			if kind == "rejected" {
				key = e2etest.RawEID(r[f.Column(t, "raw_event")])
			}
			out[key]++
		}
	}
	return out
}

func rdCompare(t *testing.T, what string, want, got map[string]int) {
	t.Helper()
	var diffs []string
	for k, n := range want {
		if got[k] != n {
			diffs = append(diffs, fmt.Sprintf("%s: %d with faults, %d without", k, got[k], n))
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %d with faults, 0 without", k, n))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s differ (%d of %d):\n  %s", what, len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 10)], "\n  "))
	}
}
