package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/pipeline"
	"materializer/pipeline/nakadi/emulator"
)

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
