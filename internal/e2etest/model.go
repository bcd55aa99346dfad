package e2etest

import (
	"encoding/json"
	"materializer/internal/articles"
	"sort"
	"strconv"
	"strings"
	"testing"

	"materializer/state"
)

// CheckCounters: the counter identity with every bucket what the events
// make it, whatever the sessions did; received counts each event once,
// redelivered ones are counted apart.
func CheckCounters(t testing.TB, events []articles.Event, c state.Counters) {
	t.Helper()
	var fresh, dup, corr, bad uint64
	for _, a := range events {
		switch a.Kind {
		case "new":
			fresh++
		case "duplicate":
			dup++
		case "out-of-order", "conflict":
			corr++
		case "malformed":
			bad++
		}
	}
	if c.Received != uint64(len(events)) || !c.Balanced() || c.Open != 0 || c.Duplicate != dup ||
		c.Correction != corr || c.Rejected != bad || c.Main+c.Superseded != fresh {
		t.Errorf("counters %+v; want received=%d open=0 duplicate=%d correction=%d rejected=%d main+superseded=%d",
			c, len(events), dup, corr, bad, fresh)
	}
}

// rowTally tallies the rows of one (table, kind) by event id.
type rowTally map[string]int

// CheckExactlyOnce proves from the delivered files that no row was written
// twice and none is missing: every row has its file's
// columns (a file never mixes two mappings); each main row is a "new" event
// and appears once, and per article the main rows' versions strictly rise
// in file order (one row per session, each session newer than the last);
// the correction rows are exactly the out-of-order and conflicting events,
// once each; the rejected rows exactly the malformed ones, once each; the
// child table has exactly each parent row's array elements; the row counts
// equal the counters.
func CheckExactlyOnce(t testing.TB, events []articles.Event, files []File, c state.Counters) {
	t.Helper()
	byEID := map[string]articles.Event{} // a duplicate has the eid of the event it repeats
	for _, a := range events {
		if _, ok := byEID[a.EID]; !ok {
			byEID[a.EID] = a
		}
	}
	rows := map[string]rowTally{}
	tally := func(kind, table, eid string) {
		k := kind + "/" + table
		if rows[k] == nil {
			rows[k] = rowTally{}
		}
		rows[k][eid]++
	}
	sortByStream(files)
	versions := map[int][]int{} // article → versions of its main rows, in file order
	for _, f := range files {
		f.checkShape(t)
		switch f.Table {
		case "article", "article_size":
			ei := f.Column(t, "eid")
			for _, r := range f.Rows {
				tally(f.Kind, f.Table, r[ei])
				if f.Kind == "main" && f.Table == "article" {
					id, _ := strconv.Atoi(r[f.Column(t, "article_id")])
					v, _ := strconv.Atoi(r[f.Column(t, "version")])
					versions[id] = append(versions[id], v)
				}
			}
		case "_rejected":
			ri := f.Column(t, "raw_event")
			for _, r := range f.Rows {
				tally(f.Kind, f.Table, RawEID(r[ri]))
			}
		}
	}
	want := func(kinds ...string) map[string]bool {
		out := map[string]bool{}
		for _, a := range events {
			for _, k := range kinds {
				if a.Kind == k {
					out[a.EID] = true
				}
			}
		}
		return out
	}
	main := rows["main/article"]
	for eid, n := range main {
		if a := byEID[eid]; n != 1 || a.Kind != "new" {
			t.Errorf("main row of event %s (%s, article %d v%d) written %d times", eid, a.Kind, a.Article, a.Version, n)
		}
	}
	if uint64(len(main)) != c.Main || sum(main) != c.Main {
		t.Errorf("%d main rows of %d events; counters say main=%d", sum(main), len(main), c.Main)
	}
	for id, vs := range versions {
		for i := 1; i < len(vs); i++ {
			if vs[i] <= vs[i-1] {
				t.Errorf("article %d: main rows with versions %v: a session's row written again", id, vs)
				break
			}
		}
	}
	exactSet(t, "correction/article", rows["correction/article"], want("out-of-order", "conflict"))
	exactSet(t, "rejected/_rejected", rows["rejected/_rejected"], want("malformed"))
	for _, kind := range []string{"main", "correction"} {
		childRows(t, kind, rows[kind+"/article"], rows[kind+"/article_size"], byEID)
	}
}

// sortByStream orders files by partition and sequence number (their key
// also holds the date they were sealed).
func sortByStream(files []File) {
	part := func(f File) string {
		name := f.Key[strings.LastIndexByte(f.Key, '/')+1:]
		return strings.Split(name, ".")[4] // article.updated.TABLE.KIND.pN.WRITER.SEQ.csv.gz
	}
	sort.SliceStable(files, func(i, j int) bool {
		if pi, pj := part(files[i]), part(files[j]); pi != pj {
			return pi < pj
		}
		return files[i].Seq < files[j].Seq
	})
}

func sum(rows rowTally) uint64 {
	var n uint64
	for _, v := range rows {
		n += uint64(v)
	}
	return n
}

// exactSet: every wanted event has exactly one row, and no other
// event has any.
func exactSet(t testing.TB, what string, got rowTally, want map[string]bool) {
	t.Helper()
	for eid := range want {
		if got[eid] != 1 {
			t.Errorf("%s: event %s has %d rows, want 1", what, eid, got[eid])
		}
	}
	for eid, n := range got {
		if !want[eid] {
			t.Errorf("%s: %d rows of event %s, which does not belong there", what, n, eid)
		}
	}
}

// childRows: article_size holds, for each article row of that kind,
// exactly one row per element of its event's sizes array.
func childRows(t testing.TB, kind string, parents, children rowTally, byEID map[string]articles.Event) {
	t.Helper()
	for eid, n := range parents {
		if want := n * sizes(t, byEID[eid]); children[eid] != want {
			t.Errorf("%s/article_size: event %s has %d rows, want %d", kind, eid, children[eid], want)
		}
	}
	for eid, n := range children {
		if parents[eid] == 0 {
			t.Errorf("%s/article_size: %d rows of event %s, which has no article row", kind, n, eid)
		}
	}
}

func sizes(t testing.TB, a articles.Event) int {
	var ev struct {
		Sizes []json.RawMessage `json:"sizes"`
	}
	if err := json.Unmarshal(a.Raw, &ev); err != nil {
		t.Fatalf("event %s: %v", a.EID, err)
	}
	return len(ev.Sizes)
}

// RawEID is metadata.eid of a rejected row's raw event.
func RawEID(raw string) string {
	var ev struct {
		Metadata struct {
			EID string `json:"eid"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal([]byte(raw), &ev)
	return ev.Metadata.EID
}
