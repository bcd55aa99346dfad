package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/pipeline"
	"materializer/pipeline/nakadi/emulator"
)

// The hostile campaign (docs/development.md#the-hostile-campaign): the real
// daemon, fed through the Nakadi emulator with normal article traffic mixed
// with every hostile shape issue 15 names — row, decimal and field bombs, a
// bomb that is the newest version of its key, 1M levels of nesting, 30 MB
// events, events just under max_event_bytes as dense as JSON gets, invalid
// UTF-8, 10 KB keys, 5000-digit versions, random bytes, truncated JSON,
// non-object values — with a restart in the middle. The
// process stays up, its peak RSS stays within daemon.memory_limit (512 MiB
// by default; measured without -race, which multiplies memory), the
// counters balance, every hostile event is in a rejected file with its
// reason (or, where a shape is valid, delivered), and every normal event is
// delivered as compaction says.
//
// make test runs a short version; MATERIALIZER_SOAK=1 (make soak) the full
// one, over 10 000 events.
func TestHostileCampaign(t *testing.T) {
	c := campaignPlan{normal: 1500, each: 2, huge: 1, keys: 8}
	if os.Getenv("MATERIALIZER_SOAK") != "" {
		c = campaignPlan{normal: 12000, each: 30, huge: 3, keys: 60}
	}
	runCampaign(t, c)
}

// campaignPlan sizes a campaign.
type campaignPlan struct {
	normal int // normal article events
	each   int // hostile events of each shape (bombs, nesting, bytes, ...)
	huge   int // 30 MB events, and dense 8 MB ones
	keys   int // 10 KB keys of the hostile.keys event type, 4 versions each
}

// hostile is one hostile event and what must become of it.
type hostile struct {
	shape  string
	marker string // unique text at its start that its rejected row shows
	raw    []byte
	reason string // a text the rejected row's error holds
	cause  string // its materializer_events_rejected_total reason
	via    string // "publish" (validated and enriched by the emulator) or "raw"
}

const (
	campaignLimit   = 512 << 20 // daemon.memory_limit's default
	campaignRawKeep = 60 << 10  // limits.max_rejected_raw_bytes' default
)

func runCampaign(t *testing.T, plan campaignPlan) {
	nk := emulator.NewServer(emulator.Options{MaxEventBytes: 4 << 20})
	t.Cleanup(nk.Close)
	if err := nk.CreateEventType("article.updated", 4, []string{"article_id"}); err != nil {
		t.Fatal(err)
	}
	if err := nk.CreateEventType("hostile.keys", 2, []string{"key"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := campaignConfig(t, dir, nk.URL())
	rng := rand.New(rand.NewPCG(15, 15))
	normal := e2etest.Generate(15, 300, plan.normal)
	bad := hostileEvents(rng, plan, normal)
	keys := keyEvents(rng, plan.keys)
	shapes := map[string]int{}
	for _, h := range bad {
		shapes[h.shape]++
	}
	shapes["10 KB key (hostile.keys, accepted)"] = plan.keys
	shapes["5000-digit version (hostile.keys, accepted)"] = 2 * plan.keys
	t.Logf("campaign: %d normal article events, %d hostile ones, %d hostile.keys events; by shape: %v",
		len(normal), len(bad), len(keys), shapes)

	var metricsBefore string
	var hwm [2]int64
	for run := range 2 {
		p := startRun(t, path)
		base := p.adminURL()
		waitStatus(t, base+"/readyz", 200)
		publishCampaign(t, nk, rng, half(normal, run), half(bad, run), half(keys, run))
		wantArticles := len(normal[:end(len(normal), run)]) + len(bad[:end(len(bad), run)])
		waitCampaign(t, base, map[string]int{"article.updated": wantArticles, "hostile.keys": end(len(keys), run)})
		if run == 1 {
			if code, body := do(t, "POST", base+"/v1/flush", ""); code != 200 {
				t.Fatalf("flush: %d %s", code, body)
			}
		}
		hwm[run] = peakRSS(t, p.cmd.Process.Pid)
		select {
		case <-p.done:
			t.Fatalf("run %d: the daemon exited (%d) under hostile input", run+1, p.code)
		default:
		}
		if run == 0 {
			_, metricsBefore = get(t, base+"/metrics")
			p.stopOK(time.Minute, "stop between the halves") // on_stop = handover: sessions close, files are delivered
			continue
		}
		_, metrics := get(t, base+"/metrics")
		stored(nk, bad)
		checkCampaign(t, dir, base, normal, bad, keys, metricsBefore, metrics)
		p.stopOK(time.Minute, "stop")
	}
	t.Logf("peak RSS (VmHWM): run 1 %d MiB, run 2 %d MiB (limit %d MiB; race detector: %v)", hwm[0]>>20, hwm[1]>>20, campaignLimit>>20, raceEnabled)
	if !raceEnabled && max(hwm[0], hwm[1]) > campaignLimit {
		t.Errorf("peak RSS %d MiB exceeds daemon.memory_limit (%d MiB)", max(hwm[0], hwm[1])>>20, campaignLimit>>20)
	}
}

func end(n, run int) int {
	if run == 0 {
		return n / 2
	}
	return n
}

// half is the first or the second half of s.
func half[S ~[]E, E any](s S, run int) S {
	if run == 0 {
		return s[:len(s)/2]
	}
	return s[len(s)/2:]
}

// campaignConfig is the e2etest config with the default [limits] and
// memory limit, a third article table that copies outer columns (brand,
// price) into every exploded row, and the hostile.keys event type.
func campaignConfig(t *testing.T, dir, nakadiURL string) string {
	t.Helper()
	path, _ := e2etest.Config(t, e2etest.Setup{Dir: dir, NakadiURL: nakadiURL})
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text = append(text, `
  [[event_types.tables]]
  name    = "article_brand"
  columns = [
    { name = "article_id", path = "article_id",   type = "int" },
    { name = "brand",      path = "brand" },
    { name = "price",      path = "price.amount", type = "decimal" },
    { name = "size",       path = "sizes[*].size" },
  ]

[[event_types]]
name          = "hostile.keys"
partition_key = ["key"]
ordering_key  = "version"
ordering      = "number"
session_gap   = "1h"
session_max   = "2h"
  [[event_types.tables]]
  name    = "keys"
  columns = [
    { name = "key",     path = "key" },
    { name = "version", path = "version", type = "decimal" },
    { name = "eid",     path = "metadata.eid" },
  ]
`...)
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// publishCampaign publishes the normal events in batches with the hostile
// ones mixed in at random places, the newest-version bombs last.
func publishCampaign(t *testing.T, nk *emulator.Server, rng *rand.Rand, normal []articles.Event, bad []hostile, keys []keyEvent) {
	t.Helper()
	var bombs []hostile
	at := map[int][]hostile{}
	batches := (len(normal) + 99) / 100
	for _, h := range bad {
		if h.shape == "bomb, newest version of its key" {
			bombs = append(bombs, h)
			continue
		}
		i := rng.IntN(batches)
		at[i] = append(at[i], h)
	}
	for i := range batches {
		e2etest.Publish(t, nk, normal[i*100:min((i+1)*100, len(normal))])
		for _, h := range at[i] {
			publishHostile(t, nk, rng, h)
		}
		for _, k := range keys[i*len(keys)/batches : (i+1)*len(keys)/batches] {
			if err := nk.Publish("hostile.keys", k.raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, h := range bombs {
		publishHostile(t, nk, rng, h)
	}
}

func publishHostile(t *testing.T, nk *emulator.Server, rng *rand.Rand, h hostile) {
	t.Helper()
	var err error
	if h.via == "publish" {
		err = nk.Publish("article.updated", h.raw)
	} else {
		err = nk.AppendRaw("article.updated", rng.IntN(4), h.raw)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", h.shape, h.marker, err)
	}
}

// statusAll fetches the status of every event type.
func statusAll(t *testing.T, base string) map[string]pipeline.EventTypeStatus {
	t.Helper()
	_, body := get(t, base+"/v1/status")
	var st statusDoc
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status: %v: %s", err, body)
	}
	out := map[string]pipeline.EventTypeStatus{}
	for _, et := range st.EventTypes {
		out[et.Name] = et
	}
	return out
}

// waitCampaign waits until every event type received its events.
func waitCampaign(t *testing.T, base string, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := statusAll(t, base)
		done := true
		for name, n := range want {
			done = done && st[name].Counters.Received >= uint64(n)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %v, want %v", map[string]uint64{"article.updated": st["article.updated"].Counters.Received,
				"hostile.keys": st["hostile.keys"].Counters.Received}, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// peakRSS is the process's VmHWM.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	hwm := vmHWM(pid)
	if hwm == 0 {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	return hwm
}
