package e2etest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"materializer/internal/articles"
	"materializer/pipeline/nakadi/emulator"
)

// The fleet model: what several daemons sharing one subscription may
// deliver (docs/design.md, scale-out). A partition is owned by one stream
// at a time; the emulator records every hand-out (emulator.Grant: the
// events after From were sent to the stream, up to Sent). The grant's
// writer surely applied the events up to where the next grant starts (it
// committed them: only the owner's commits count), and it may also have
// applied the events after that which it was sent but did not commit
// (killed, commit timeout): the move window, which the next owner applies
// again. Each writer compacts with what it knows: an event it surely
// applied before sets its hi(k) for good; an event the writer never saw
// leaves its hi(k) lower than the fleet's (the new owner of a partition
// starts without the old owner's hi).
//
// The rules, per writer W and event e:
//   - W writes rows only of events it was sent (sure or in a move window);
//   - a malformed event has a rejected row by its sure writer, and at most
//     one by every other writer that may have applied it;
//   - an out-of-order or conflicting event that W surely applied after an
//     event of the same key it surely applied, with a higher ordering value
//     (or equal with another eid), has W's correction row; a correction row
//     by W needs an event W may have applied that W could have judged so;
//   - a main row by W needs an event W may have applied whose version W
//     did not surely know already (fresh at W), and W writes an event's
//     main row at most once;
//   - per key, W's main rows rise strictly in W's file order, and reach the
//     highest new version W surely applied (its sessions all closed);
//   - per key, the highest main row of the fleet is the final version,
//     with the eid of the event that made it (another main row with the
//     same version and another eid is the documented tie: counted);
//   - the child table holds each parent row's array elements, per writer.
//
// A writer that logged a redelivery mismatch (a partition came back to it
// after another member committed on other batch boundaries; one batch may
// be applied twice) may write an event's rows twice.

// Fleet is what the fleet model is checked against.
type Fleet struct {
	Events       []articles.Event // in publish order
	EventType    string
	Partitions   int
	Emulator     *emulator.Server
	Subscription string
	Writers      map[string]string // stream id → writer id
	Mismatch     map[string]bool   // writers that logged a redelivery mismatch
	Files        []File
}

// FleetReport counts what the model found allowed but noteworthy.
type FleetReport struct {
	Grants        int // partition hand-outs (the first included)
	Moves         int // hand-outs to another writer than the one before
	Windowed      int // events in a move window (applied by two writers, maybe)
	TwiceByFleet  int // events with rows of one kind by more than one writer
	Ties          int // keys whose final version has main rows with two eids
	FreshAtNewOwn int // out-of-order or conflicting events with a main row
}

func (r FleetReport) String() string {
	return fmt.Sprintf("%d grants, %d moves, %d events in move windows, %d events with rows by two writers, %d ties at the final version, %d out-of-order or conflicting events written as main by an owner that did not know the key's hi",
		r.Grants, r.Moves, r.Windowed, r.TwiceByFleet, r.Ties, r.FreshAtNewOwn)
}

// fleetEvent is one published event where it landed, and who applied it.
type fleetEvent struct {
	articles.Event
	part   int
	offset int64
	sure   string
	maybe  []string
	// per writer that was sent it: what it could do with it
	canMain, canCorrect, mustCorrect map[string]bool
}

// CheckFleet checks the delivered files of a fleet against the model.
func CheckFleet(t testing.TB, f Fleet) FleetReport {
	t.Helper()
	evs := locate(t, f)
	var rep FleetReport
	for p := range f.Partitions {
		rep.add(assign(t, f, p, evs[p]))
	}
	judge(evs)
	rows := tallyRows(t, f.Files)
	byEID := map[string][]*fleetEvent{}
	for _, part := range evs {
		for _, e := range part {
			byEID[e.EID] = append(byEID[e.EID], e)
		}
	}
	checkRows(t, f, rows, byEID, &rep)
	checkRequired(t, rows, evs)
	checkMainOrder(t, f.Files, evs)
	checkFinal(t, f, rows, byEID, &rep)
	first := firstByEID(byEID)
	for _, w := range rows.writers() {
		for _, kind := range []string{"main", "correction"} {
			childRows(t, w+" "+kind, rows.of(w, kind, "article"), rows.of(w, kind, "article_size"), first)
		}
	}
	return rep
}

func (r *FleetReport) add(o FleetReport) {
	r.Grants += o.Grants
	r.Moves += o.Moves
	r.Windowed += o.Windowed
}

// locate finds every published event in the emulator's partitions: events
// of one key share a partition, and a repeated eid (a duplicate) comes
// after the event it repeats, so the n-th stored event with an eid is the
// n-th published one.
func locate(t testing.TB, f Fleet) [][]*fleetEvent {
	t.Helper()
	queue := map[string][]articles.Event{}
	for _, a := range f.Events {
		queue[a.EID] = append(queue[a.EID], a)
	}
	out := make([][]*fleetEvent, f.Partitions)
	found := 0
	for p := range f.Partitions {
		for _, s := range f.Emulator.Stored(f.EventType, p) {
			eid := storedEID(t, s.Data)
			q := queue[eid]
			if len(q) == 0 {
				t.Fatalf("partition %d offset %d: event %s was not published by the test", p, s.Offset, eid)
			}
			queue[eid] = q[1:]
			out[p] = append(out[p], &fleetEvent{Event: q[0], part: p, offset: s.Offset,
				canMain: map[string]bool{}, canCorrect: map[string]bool{}, mustCorrect: map[string]bool{}})
			found++
		}
	}
	if found != len(f.Events) {
		t.Fatalf("%d of %d published events are in the emulator", found, len(f.Events))
	}
	return out
}

func storedEID(t testing.TB, data []byte) string {
	var ev struct {
		Metadata struct {
			EID string `json:"eid"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("stored event %s: %v", data, err)
	}
	return ev.Metadata.EID
}

// assign sets every event's sure writer and move-window writers from the
// partition's grants: grant i's writer surely applied (From_i, From_i+1],
// the last grant's up to the newest offset (everything is committed at the
// end), and may have applied what it was sent beyond that.
func assign(t testing.TB, f Fleet, p int, evs []*fleetEvent) FleetReport {
	t.Helper()
	var gs []emulator.Grant
	for _, g := range f.Emulator.Grants(f.Subscription) {
		if g.EventType == f.EventType && g.Partition == p {
			gs = append(gs, g)
		}
	}
	var rep FleetReport
	newest := int64(-1)
	if len(evs) > 0 {
		newest = evs[len(evs)-1].offset
	}
	prev := ""
	for i, g := range gs {
		w, ok := f.Writers[g.Stream]
		if !ok {
			t.Fatalf("partition %d was handed to stream %s, which no member logged", p, g.Stream)
		}
		end := newest
		if i+1 < len(gs) {
			end = gs[i+1].From
		}
		if end < g.From {
			t.Fatalf("partition %d: grant %d starts at %d, the next at %d: the committed cursor went back", p, i, g.From, end)
		}
		rep.Grants++
		if prev != "" && w != prev {
			rep.Moves++
		}
		prev = w
		for _, e := range evs {
			switch {
			case e.offset > g.From && e.offset <= end:
				e.sure = w
			case e.offset > end && e.offset <= g.Sent:
				e.maybe = append(e.maybe, w)
			}
		}
	}
	for _, e := range evs {
		if e.sure == "" {
			t.Fatalf("partition %d offset %d (event %s) was never handed to any member", p, e.offset, e.EID)
		}
		e.maybe = slices.DeleteFunc(slices.Compact(sortedCopy(e.maybe)), func(w string) bool { return w == e.sure })
		if len(e.maybe) > 0 {
			rep.Windowed++
		}
	}
	return rep
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// hi is what a writer knows of a key: the highest version and its eid.
type hi struct {
	version int
	eid     string
	known   bool
}

// corrects: with this hi, the decision table makes e a correction.
func (h hi) corrects(e *fleetEvent) bool {
	return h.known && (e.Version < h.version || e.Version == h.version && e.EID != h.eid)
}

// judge replays each writer's compaction decisions bounds: per writer and
// key, hiSure from the events it surely applied, hiAny from every event it
// may have applied, in partition order.
func judge(evs [][]*fleetEvent) {
	type wk struct {
		w       string
		article int
	}
	for _, part := range evs {
		sure, any := map[wk]hi{}, map[wk]hi{}
		for _, e := range part {
			if e.Kind == "malformed" {
				continue
			}
			for i, w := range append([]string{e.sure}, e.maybe...) {
				k := wk{w, e.Article}
				hs, ha := sure[k], any[k]
				e.canMain[w] = !hs.known || e.Version > hs.version
				e.canCorrect[w] = hs.corrects(e) || ha.corrects(e) || ha.known && e.Version < ha.version
				if i == 0 {
					e.mustCorrect[w] = hs.corrects(e)
					if !hs.known || e.Version > hs.version {
						sure[k] = hi{e.Version, e.EID, true}
					}
				}
				if !ha.known || e.Version > ha.version {
					any[k] = hi{e.Version, e.EID, true}
				}
			}
		}
	}
}

// fleetRows tallies rows by writer, kind, table and event id.
type fleetRows map[[4]string]int

func (r fleetRows) of(w, kind, table string) rowTally {
	out := rowTally{}
	for k, n := range r {
		if k[0] == w && k[1] == kind && k[2] == table {
			out[k[3]] += n
		}
	}
	return out
}

func (r fleetRows) writers() []string {
	var out []string
	for k := range r {
		out = append(out, k[0])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func tallyRows(t testing.TB, files []File) fleetRows {
	t.Helper()
	rows := fleetRows{}
	for _, f := range files {
		f.checkShape(t)
		switch f.Table {
		case "article", "article_size":
			ei := f.Column(t, "eid")
			for _, r := range f.Rows {
				rows[[4]string{f.Writer, f.Kind, f.Table, r[ei]}]++
			}
		case "_rejected":
			ri := f.Column(t, "raw_event")
			for _, r := range f.Rows {
				rows[[4]string{f.Writer, f.Kind, f.Table, RawEID(r[ri])}]++
			}
		}
	}
	return rows
}

// checkRows: every row is one a writer may have written, at most as often
// as it may have (once; twice after a redelivery mismatch).
func checkRows(t testing.TB, f Fleet, rows fleetRows, byEID map[string][]*fleetEvent, rep *FleetReport) {
	t.Helper()
	writersOf := map[[2]string]map[string]bool{} // (kind, eid) → writers with rows
	for k, n := range rows {
		w, kind, table, eid := k[0], k[1], k[2], k[3]
		if table == "article_size" {
			continue
		}
		limit := 1
		if f.Mismatch[w] {
			limit = 2
		}
		allowed := false
		for _, e := range byEID[eid] {
			if !slices.Contains(e.maybe, w) && e.sure != w {
				continue
			}
			switch kind {
			case "rejected":
				allowed = allowed || e.Kind == "malformed"
			case "correction":
				allowed = allowed || e.Kind != "malformed" && e.canCorrect[w]
			case "main":
				ok := e.Kind != "malformed" && e.canMain[w]
				allowed = allowed || ok
				if ok && (e.Kind == "out-of-order" || e.Kind == "conflict") {
					rep.FreshAtNewOwn++
				}
			}
		}
		if !allowed {
			t.Errorf("writer %s: %d %s rows of event %s (%s), which it could not have written that way", w, n, kind, eid, describe(byEID[eid]))
		} else if n > limit {
			t.Errorf("writer %s: %d %s rows of event %s (%s), at most %d allowed", w, n, kind, eid, describe(byEID[eid]), limit)
		}
		key := [2]string{kind, eid}
		if writersOf[key] == nil {
			writersOf[key] = map[string]bool{}
		}
		writersOf[key][w] = true
	}
	seen := map[string]bool{}
	for k, ws := range writersOf {
		if len(ws) > 1 && !seen[k[1]] {
			seen[k[1]] = true
			rep.TwiceByFleet++
		}
	}
}

func describe(evs []*fleetEvent) string {
	if len(evs) == 0 {
		return "not published"
	}
	e := evs[0]
	return fmt.Sprintf("%s, article %d v%d, partition %d offset %d, sure %s, window %v", e.Kind, e.Article, e.Version, e.part, e.offset, e.sure, e.maybe)
}

// checkRequired: what the sure writer must have written is there — every
// malformed event's rejected row, every correction its knowledge forced.
func checkRequired(t testing.TB, rows fleetRows, evs [][]*fleetEvent) {
	t.Helper()
	for _, part := range evs {
		for _, e := range part {
			switch {
			case e.Kind == "malformed" && rows[[4]string{e.sure, "rejected", "_rejected", e.EID}] == 0:
				t.Errorf("malformed event %s: no rejected row by %s", describe([]*fleetEvent{e}), e.sure)
			case e.mustCorrect[e.sure] && rows[[4]string{e.sure, "correction", "article", e.EID}] == 0:
				t.Errorf("event %s: no correction row by %s", describe([]*fleetEvent{e}), e.sure)
			}
		}
	}
}

// checkMainOrder: per writer and key, main versions rise strictly in the
// writer's file order and reach the highest new version it surely applied.
func checkMainOrder(t testing.TB, files []File, evs [][]*fleetEvent) {
	t.Helper()
	files = slices.Clone(files)
	slices.SortStableFunc(files, func(a, b File) int {
		if a.Writer != b.Writer {
			return compareStrings(a.Writer, b.Writer)
		}
		if a.Partition != b.Partition {
			return compareStrings(a.Partition, b.Partition)
		}
		return a.Seq - b.Seq
	})
	type wk struct {
		w       string
		article int
	}
	versions := map[wk][]int{}
	for _, f := range files {
		if f.Kind != "main" || f.Table != "article" {
			continue
		}
		ai, vi := f.Column(t, "article_id"), f.Column(t, "version")
		for _, r := range f.Rows {
			id, _ := strconv.Atoi(r[ai])
			v, _ := strconv.Atoi(r[vi])
			versions[wk{f.Writer, id}] = append(versions[wk{f.Writer, id}], v)
		}
	}
	for k, vs := range versions {
		for i := 1; i < len(vs); i++ {
			if vs[i] <= vs[i-1] {
				t.Errorf("writer %s, article %d: main rows with versions %v: a session's row written again", k.w, k.article, vs)
				break
			}
		}
	}
	for _, part := range evs {
		reached := map[wk]int{}
		for _, e := range part {
			if e.Kind == "new" {
				k := wk{e.sure, e.Article}
				reached[k] = max(reached[k], e.Version)
			}
		}
		for k, v := range reached {
			if vs := versions[k]; len(vs) == 0 || slices.Max(vs) < v {
				t.Errorf("writer %s, article %d: surely applied version %d, its main rows reach only %v", k.w, k.article, v, vs)
			}
		}
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkFinal: per key, the fleet's highest main row is the final version
// and carries the eid of the event that made it.
func checkFinal(t testing.TB, f Fleet, rows fleetRows, byEID map[string][]*fleetEvent, rep *FleetReport) {
	t.Helper()
	x := Expect(f.Events)
	newestEID := map[int]string{}
	for _, a := range f.Events {
		if a.Kind == "new" && a.Version == x.Newest[a.Article] {
			newestEID[a.Article] = a.EID
		}
	}
	top := map[int]int{}
	topEIDs := map[int]map[string]bool{}
	for k := range rows {
		if k[1] != "main" || k[2] != "article" {
			continue
		}
		evs := byEID[k[3]] // an eid's events share key and version
		if len(evs) == 0 {
			continue // reported by checkRows
		}
		switch e := evs[0]; {
		case e.Version > top[e.Article]:
			top[e.Article] = e.Version
			topEIDs[e.Article] = map[string]bool{e.EID: true}
		case e.Version == top[e.Article]:
			topEIDs[e.Article][e.EID] = true
		}
	}
	for a, v := range x.Newest {
		switch {
		case top[a] != v:
			t.Errorf("article %d: newest main row has version %d, want %d", a, top[a], v)
		case !topEIDs[a][newestEID[a]]:
			t.Errorf("article %d: no main row of the final version's event %s (main rows at v%d: %v)", a, newestEID[a], v, topEIDs[a])
		case len(topEIDs[a]) > 1:
			rep.Ties++
		}
	}
	if len(top) != len(x.Newest) {
		t.Errorf("main rows for %d articles, want %d", len(top), len(x.Newest))
	}
}

func firstByEID(byEID map[string][]*fleetEvent) map[string]articles.Event {
	out := map[string]articles.Event{}
	for eid, evs := range byEID {
		out[eid] = evs[0].Event
	}
	return out
}
