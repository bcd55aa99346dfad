package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"materializer/state"
)

// finish runs the daemon once more without a failpoint: it publishes what
// is left, waits until every event is received, flushes (every session
// closes, every file is delivered and announced), stops it with SIGTERM,
// and proves the outcome (DESIGN.md §2): every event accounted for exactly
// once, no row twice, every file announced once.
func (r *crashRig) finish() state.Counters {
	r.t.Helper()
	start := time.Now()
	p := r.start()
	base := p.adminURL()
	<-r.publishAsync(len(r.events), time.Second)
	waitReceived(r.t, base, len(r.events), 3*time.Minute)
	if code, body := do(r.t, "POST", base+"/v1/flush", ""); code != 200 {
		r.t.Fatalf("flush: %d %s", code, body)
	}
	s, ok := adminStatus(r.t, base)
	if !ok {
		r.t.Fatal("no status after the flush")
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		r.t.Fatalf("exit %d after SIGTERM; log tail:\n%s", code, p.crashTail(40))
	}
	r.note("run %d (%s): final, flushed, stopped after %v; counters %+v", r.runs, r.config, time.Since(start).Round(time.Millisecond), s.Counters)
	if s.Delivery.PendingFiles != 0 {
		r.t.Errorf("%d files still pending after the flush", s.Delivery.PendingFiles)
	}
	files := readDelivered(r.t, r.storage)
	checkCrashCounters(r.t, r.events, s.Counters)
	checkDelivered(r.t, files, expect(r.events))
	checkExactlyOnce(r.t, r.events, files, s.Counters)
	checkNotices(r.t, r.ns.URL(), files)
	if left, _ := os.ReadDir(filepath.Join(r.dir, "data", "staging")); len(left) != 0 {
		r.t.Errorf("%d staging files left after the flush: %v", len(left), left)
	}
	return s.Counters
}

// checkCrashCounters: the §2 identity with every bucket what the events
// make it, whatever the sessions did; received counts each event once,
// redelivered ones are counted apart.
func checkCrashCounters(t *testing.T, events []article, c state.Counters) {
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

// crashRows tallies the rows of one (table, kind) by event id.
type crashRows map[string]int

// checkExactlyOnce proves from the delivered files that no row was written
// twice and none is missing (DESIGN.md §2): every row has its file's
// columns (a file never mixes two mappings); each main row is a "new" event
// and appears once, and per article the main rows' versions strictly rise
// in file order (one row per session, each session newer than the last);
// the correction rows are exactly the out-of-order and conflicting events,
// once each; the rejected rows exactly the malformed ones, once each; the
// child table has exactly each parent row's array elements; the row counts
// equal the counters.
func checkExactlyOnce(t *testing.T, events []article, files []deliveredFile, c state.Counters) {
	t.Helper()
	byEID := map[string]article{} // a duplicate has the eid of the event it repeats
	for _, a := range events {
		if _, ok := byEID[a.EID]; !ok {
			byEID[a.EID] = a
		}
	}
	rows := map[string]crashRows{}
	tally := func(kind, table, eid string) {
		k := kind + "/" + table
		if rows[k] == nil {
			rows[k] = crashRows{}
		}
		rows[k][eid]++
	}
	crashSortByStream(files)
	versions := map[int][]int{} // article → versions of its main rows, in file order
	for _, f := range files {
		for i, r := range f.Rows {
			if len(r) != len(f.Header) {
				t.Errorf("%s: row %d has %d fields, the header %d (%v): rows of two mappings in one file", f.Key, i+1, len(r), len(f.Header), f.Header)
				break
			}
		}
		switch f.Table {
		case "article", "article_size":
			ei := f.column(t, "eid")
			for _, r := range f.Rows {
				tally(f.Kind, f.Table, r[ei])
				if f.Kind == "main" && f.Table == "article" {
					id, _ := strconv.Atoi(r[f.column(t, "article_id")])
					v, _ := strconv.Atoi(r[f.column(t, "version")])
					versions[id] = append(versions[id], v)
				}
			}
		case "_rejected":
			ri := f.column(t, "raw_event")
			for _, r := range f.Rows {
				tally(f.Kind, f.Table, crashRawEID(r[ri]))
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
	if uint64(len(main)) != c.Main || crashSum(main) != c.Main {
		t.Errorf("%d main rows of %d events; counters say main=%d", crashSum(main), len(main), c.Main)
	}
	for id, vs := range versions {
		for i := 1; i < len(vs); i++ {
			if vs[i] <= vs[i-1] {
				t.Errorf("article %d: main rows with versions %v: a session's row written again", id, vs)
				break
			}
		}
	}
	crashExactSet(t, "correction/article", rows["correction/article"], want("out-of-order", "conflict"))
	crashExactSet(t, "rejected/_rejected", rows["rejected/_rejected"], want("malformed"))
	for _, kind := range []string{"main", "correction"} {
		crashChildRows(t, kind, rows[kind+"/article"], rows[kind+"/article_size"], byEID)
	}
}

// crashSortByStream orders files by partition and sequence number (their key
// also holds the date they were sealed).
func crashSortByStream(files []deliveredFile) {
	part := func(f deliveredFile) string {
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

func crashSum(rows crashRows) uint64 {
	var n uint64
	for _, v := range rows {
		n += uint64(v)
	}
	return n
}

// crashExactSet: every wanted event has exactly one row, and no other
// event has any.
func crashExactSet(t *testing.T, what string, got crashRows, want map[string]bool) {
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

// crashChildRows: article_size holds, for each event with an article row
// of that kind, exactly one row per element of its sizes array.
func crashChildRows(t *testing.T, kind string, parents, children crashRows, byEID map[string]article) {
	t.Helper()
	for eid := range parents {
		if want := crashSizes(t, byEID[eid]); children[eid] != want {
			t.Errorf("%s/article_size: event %s has %d rows, want %d", kind, eid, children[eid], want)
		}
	}
	for eid, n := range children {
		if parents[eid] == 0 {
			t.Errorf("%s/article_size: %d rows of event %s, which has no article row", kind, n, eid)
		}
	}
}

func crashSizes(t *testing.T, a article) int {
	var ev struct {
		Sizes []json.RawMessage `json:"sizes"`
	}
	if err := json.Unmarshal(a.Raw, &ev); err != nil {
		t.Fatalf("event %s: %v", a.EID, err)
	}
	return len(ev.Sizes)
}

// crashRawEID is metadata.eid of a rejected row's raw event.
func crashRawEID(raw string) string {
	var ev struct {
		Metadata struct {
			EID string `json:"eid"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal([]byte(raw), &ev)
	return ev.Metadata.EID
}
