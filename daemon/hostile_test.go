package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

// hostileEvents makes plan.each events of every hostile shape (plan.huge
// 30 MB ones), for articles of the normal traffic.
func hostileEvents(rng *rand.Rand, plan campaignPlan, normal []articles.Event) []hostile {
	var out []hostile
	n := 0
	add := func(shape, via, reason, cause string, body func(marker string) []byte) {
		n++
		marker := fmt.Sprintf("H%06d", n)
		out = append(out, hostile{shape: shape, marker: marker, raw: body(marker), reason: reason, cause: cause, via: via})
	}
	article := func() int { return normal[rng.IntN(len(normal))].Article }
	obj := func(marker string, id any, version any, rest string) []byte {
		return fmt.Appendf(nil, `{"hostile":%q,"metadata":{"eid":"%s","occurred_at":"2026-11-21T12:00:00Z"},"article_id":%s,"version":%s%s}`,
			marker, uuid(rng), jsonText(id), jsonText(version), rest)
	}
	sizes := func(k int, size string) string {
		return `,"sizes":[` + strings.Repeat(`{"size":"`+size+`","qty":1},`, k-1) + `{"size":"S","qty":1}]`
	}
	for range plan.each {
		add("row bomb", "publish", "limits.max_rows_per_event = 10000", "limit_rows", func(m string) []byte {
			return obj(m, article(), 7, `,"brand":"`+strings.Repeat("b", 200<<10)+`"`+sizes(20000, "S"))
		})
		add("decimal bomb", "publish", "limits.max_event_output_bytes = 16777216", "limit_bytes", func(m string) []byte {
			return obj(m, article(), 7, `,"price":{"amount":1e131071}`+sizes(200, "S"))
		})
		add("field bomb", "publish", "limits.max_field_bytes = 1048576", "limit_field", func(m string) []byte {
			return obj(m, article(), 7, `,"brand":"`+strings.Repeat("f", 2<<20)+`"`)
		})
		add("1M levels of nesting", "raw", "exceeded max depth", "parse", func(m string) []byte {
			return obj(m, article(), 7, `,"deep":`+strings.Repeat("[", 1<<20)+strings.Repeat("]", 1<<20))
		})
		add("invalid UTF-8", "raw", "invalid UTF-8", "utf8", func(m string) []byte {
			return obj(m, article(), 7, ",\"brand\":\"ok \xff\xfe bad \xc3\"")
		})
		add("10 KB key (article)", "publish", "is not an int", "type", func(m string) []byte {
			return obj(m, strings.Repeat("k", 10<<10), 7, "")
		})
		add("5000-digit version (article)", "publish", "is out of the int range", "type", func(m string) []byte {
			return obj(m, article(), json.Number("9"+strings.Repeat("0", 4999)), "")
		})
		add("random bytes", "raw", "invalid JSON", "parse", func(m string) []byte {
			return append([]byte(m), randomBytes(rng, 1+rng.IntN(4096))...)
		})
		add("truncated JSON", "raw", "invalid JSON", "parse", func(m string) []byte {
			full := obj(m, article(), 7, `,"brand":"trunc \"q\" \\ é","sizes":[{"size":"M","qty":2}]`)
			return truncate(full, 40+rng.IntN(len(full)-41))
		})
		add("non-object value", "raw", "not a JSON object", "parse", func(m string) []byte {
			return [][]byte{fmt.Appendf(nil, `[%q,1,{"a":null}]`, m), fmt.Appendf(nil, `%q`, m),
				fmt.Appendf(nil, `9%s`, m[1:])}[rng.IntN(3)]
		})
	}
	for range plan.huge {
		add("30 MB event", "raw", "limits.max_event_bytes = 8388608: rejected unparsed", "limit_event", func(m string) []byte {
			return obj(m, article(), 7, `,"brand":"`+strings.Repeat("h", 30<<20)+`"`)
		})
		// Just under max_event_bytes, and as dense as JSON gets: 4 million
		// values to index, parsed whole before a column rejects it.
		add("dense 8 MB event", "raw", "is not an int", "type", func(m string) []byte {
			return obj(m, "dense", 7, `,"a":[`+strings.Repeat("0,", 4<<20-100)+`0]`)
		})
	}
	// A bomb that is the newest version of its key: published after every
	// normal event, with a higher version than any.
	for range plan.each {
		add("bomb, newest version of its key", "publish", "limits.max_rows_per_event = 10000", "limit_rows", func(m string) []byte {
			return obj(m, article(), 1_000_000, sizes(10001, "N"))
		})
	}
	return out
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func uuid(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()>>16)
}

// randomBytes are bytes a batch line can carry as one event: any byte but
// JSON's structural ones, quotes, backslash and whitespace (they would end
// or break the line, which is not an event's doing).
func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		c := byte(0x21 + rng.IntN(0xff-0x21+1))
		if !strings.ContainsRune(`"{}[],\`, rune(c)) && c != 0x7f {
			b = append(b, c)
		}
	}
	return b
}

// truncate cuts a JSON object after n bytes and closes it as the line
// framing needs (strings terminated, brackets balanced) behind a trailing
// comma, so that the event stays invalid JSON.
func truncate(full []byte, n int) []byte {
	var stack []byte
	inString, escaped := false, false
	cut := full[:n]
	for _, c := range cut {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			stack = append(stack, c+2) // '{'+2 == '}', '['+2 == ']'
		case c == '}' || c == ']':
			stack = stack[:len(stack)-1]
		}
	}
	out := slices.Clone(cut)
	if escaped {
		out = out[:len(out)-1]
	}
	if inString {
		out = append(out, '"')
	}
	out = append(out, ',')
	for i := len(stack) - 1; i >= 0; i-- {
		out = append(out, stack[i])
	}
	return out
}

// keyEvent is an event of hostile.keys: a 10 KB key and its versions, the
// last two of 5000 digits.
type keyEvent struct {
	key     string
	version string
	raw     []byte
}

func keyEvents(rng *rand.Rand, keys int) []keyEvent {
	var out []keyEvent
	for k := range keys {
		key := fmt.Sprintf("K%04d-", k) + strings.Repeat(string(rune('a'+k%26)), 10<<10)
		for _, v := range []string{"1", "2", "3" + strings.Repeat("0", 4999), "3" + strings.Repeat("0", 4998) + "1"} {
			raw := fmt.Appendf(nil, `{"metadata":{"eid":"%s","occurred_at":"2026-11-21T12:00:00Z"},"key":%q,"version":%s}`, uuid(rng), key, v)
			out = append(out, keyEvent{key: key, version: v, raw: raw})
		}
	}
	// Interleave the keys, each key's versions in order.
	slices.SortStableFunc(out, func(a, b keyEvent) int { return strings.Compare(versionRank(a.version), versionRank(b.version)) })
	return out
}

func versionRank(v string) string { return fmt.Sprintf("%05d%s", len(v), v[:1]) }

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

// stored replaces the hostile events the emulator enriched (metadata it
// owns, as Nakadi does) with the bytes it stores and sends.
func stored(nk *emulator.Server, bad []hostile) {
	byMarker := map[string]*hostile{}
	for i := range bad {
		byMarker[bad[i].marker] = &bad[i]
	}
	for p := range 4 {
		for _, ev := range nk.Events("article.updated", p) {
			if m := regexp.MustCompile(`^\{"hostile":"(H\d{6})"`).FindSubmatch(ev); m != nil && byMarker[string(m[1])] != nil {
				byMarker[string(m[1])].raw = ev
			}
		}
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
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// checkCampaign checks what the two runs delivered and counted.
func checkCampaign(t *testing.T, dir, base string, normal []articles.Event, bad []hostile, keys []keyEvent, metricsBefore, metrics string) {
	t.Helper()
	st := statusAll(t, base)
	x := e2etest.Expect(normal)
	c := st["article.updated"].Counters
	if c.Received != uint64(len(normal)+len(bad)) || !c.Balanced() || c.Open != 0 || c.Rejected != uint64(x.Rejected+len(bad)) ||
		c.Duplicate != uint64(x.Duplicates) || c.Main < uint64(len(x.Newest)) {
		t.Errorf("article counters %+v; want received %d, rejected %d, duplicate %d, main ≥ %d",
			c, len(normal)+len(bad), x.Rejected+len(bad), x.Duplicates, len(x.Newest))
	}
	files := e2etest.ReadDelivered(t, filepath.Join(dir, "storage"))
	var articleFiles, rejected, keyFiles []e2etest.File
	for _, f := range files {
		switch et := f.Key[:strings.IndexByte(f.Key, '/')]; {
		case et == "hostile.keys":
			keyFiles = append(keyFiles, f)
		case f.Kind == "rejected":
			rejected = append(rejected, f)
		default:
			articleFiles = append(articleFiles, f)
		}
	}
	nx := x
	nx.Rejected = 0 // checked below, with the hostile ones
	e2etest.CheckDelivered(t, articleFiles, nx)
	checkRejected(t, rejected, normal, bad)
	checkKeys(t, keyFiles, keys, st["hostile.keys"])
	checkRejectedMetric(t, metricsBefore, metrics, bad, c.Rejected)
}

// checkRejected: every hostile event and every malformed normal one has
// exactly one rejected row, with its reason; raw events beyond the kept
// size are cut with their length and sha256 in the error.
func checkRejected(t *testing.T, files []e2etest.File, normal []articles.Event, bad []hostile) {
	t.Helper()
	byMarker := map[string]*hostile{}
	for i := range bad {
		byMarker[bad[i].marker] = &bad[i]
	}
	malformed := map[string]bool{}
	for _, a := range normal {
		if a.Kind == "malformed" {
			malformed[a.EID] = true
		}
	}
	seen := map[string]int{}
	marker := regexp.MustCompile(`^(?:\{"hostile":"|\["|")?(H\d{6})|^9(\d{6})`)
	for _, f := range files {
		ei, ri := f.Column(t, "error"), f.Column(t, "raw_event")
		for _, r := range f.Rows {
			if eid := e2etest.RawEID(r[ri]); malformed[eid] {
				seen[eid]++
				continue
			}
			m := marker.FindStringSubmatch(r[ri])
			if m == nil {
				t.Errorf("a rejected row of no event sent: %.200q (%s)", r[ri], r[ei])
				continue
			}
			id := m[1]
			if id == "" {
				id = "H" + m[2]
			}
			seen[id]++
			h := byMarker[id]
			if h == nil {
				t.Errorf("rejected row %s: no such hostile event", id)
				continue
			}
			if !strings.Contains(r[ei], h.reason) {
				t.Errorf("%s (%s): error %.300q, want it to say %q", h.shape, id, r[ei], h.reason)
			}
			if len(h.raw) > campaignRawKeep {
				sum := sha256.Sum256(h.raw)
				note := fmt.Sprintf("of %d bytes; sha256 of the whole event %s)", len(h.raw), hex.EncodeToString(sum[:]))
				if !strings.Contains(r[ei], note) || len(r[ri]) > campaignRawKeep {
					t.Errorf("%s (%s): %d bytes kept, error %.300q; want at most %d bytes and %q", h.shape, id, len(r[ri]), r[ei], campaignRawKeep, note)
				}
			}
		}
	}
	for _, h := range bad {
		if seen[h.marker] != 1 {
			t.Errorf("%s %s: %d rejected rows, want 1", h.shape, h.marker, seen[h.marker])
		}
	}
	for eid := range malformed {
		if seen[eid] != 1 {
			t.Errorf("malformed event %s: %d rejected rows, want 1", eid, seen[eid])
		}
	}
}

// checkKeys: the 10 KB keys and 5000-digit versions are valid: every
// key's last main row holds its newest version, nothing is rejected.
func checkKeys(t *testing.T, files []e2etest.File, keys []keyEvent, st pipeline.EventTypeStatus) {
	t.Helper()
	newest := map[string]string{}
	for _, k := range keys {
		if len(k.version) > len(newest[k.key]) || len(k.version) == len(newest[k.key]) && k.version > newest[k.key] {
			newest[k.key] = k.version
		}
	}
	last := map[string]string{}
	slices.SortStableFunc(files, func(a, b e2etest.File) int { return a.Seq - b.Seq })
	for _, f := range files {
		if f.Kind != "main" {
			t.Errorf("hostile.keys: a %s file: %s", f.Kind, f.Key)
			continue
		}
		ki, vi := f.Column(t, "key"), f.Column(t, "version")
		for _, r := range f.Rows {
			last[r[ki]] = r[vi]
		}
	}
	for key, v := range newest {
		if last[key] != v {
			t.Errorf("key %.12s…: last main row version %.12s… (%d digits), want %d digits", key, last[key], len(last[key]), len(v))
		}
	}
	if c := st.Counters; len(last) != len(newest) || !c.Balanced() || c.Received != uint64(len(keys)) || c.Rejected != 0 || c.Open != 0 {
		t.Errorf("main rows for %d keys, want %d; counters %+v", len(last), len(newest), c)
	}
}

// checkRejectedMetric: materializer_events_rejected_total of both runs adds
// up to the rejected counter, and counts each hostile cause.
func checkRejectedMetric(t *testing.T, before, after string, bad []hostile, rejected uint64) {
	t.Helper()
	sum := func(text string) (float64, map[string]float64) {
		var total float64
		by := map[string]float64{}
		re := regexp.MustCompile(`^materializer_events_rejected_total\{event_type="article.updated",reason="([a-z_0-9]+)"\} (\S+)$`)
		for _, l := range strings.Split(text, "\n") {
			if m := re.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[2], 64)
				total += v
				by[m[1]] += v
			}
		}
		return total, by
	}
	t1, by1 := sum(before)
	t2, by2 := sum(after)
	if uint64(t1+t2) != rejected {
		t.Errorf("materializer_events_rejected_total: %g + %g, the counter says %d", t1, t2, rejected)
	}
	want := map[string]float64{}
	for _, h := range bad {
		want[h.cause]++
	}
	for cause, n := range want {
		if got := by1[cause] + by2[cause]; got < n || strings.HasPrefix(cause, "limit_") && got != n {
			t.Errorf("materializer_events_rejected_total{reason=%q} = %g, want %g", cause, got, n)
		}
	}
}
