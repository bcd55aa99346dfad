// Package articles generates realistic article.updated events for the demo
// and the tests: every article gets rising versions; some events arrive out
// of order, some are duplicates (same version and eid), some conflict (same
// version, another eid), some are malformed. It is deterministic for a seed
// and remembers what it made, so tests know the right answer.
package articles

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Gen generates events over a fixed number of articles.
type Gen struct {
	rng      *rand.Rand
	articles int
	now      func() time.Time
	version  map[int]int    // newest version made per article
	eids     map[[2]int]int // (article, version) → eid serial
	serial   int

	// Shares of special events, in percent.
	OutOfOrder, Duplicate, Conflict, Malformed int
}

// Event is one generated event and what it is.
type Event struct {
	Raw     []byte
	Article int
	Version int
	EID     string
	Kind    string // new | out-of-order | duplicate | conflict | malformed
}

var brands = []string{"acme", "zalando", "nordic & co", "Ünïcødé", `quote "q"`, "comma, inc", "new\nline"}

func New(seed uint64, articles int, now func() time.Time) *Gen {
	return &Gen{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), articles: articles, now: now,
		version: map[int]int{}, eids: map[[2]int]int{},
		OutOfOrder: 3, Duplicate: 2, Conflict: 1, Malformed: 1,
	}
}

// Next makes the next event, for an article picked uniformly.
func (g *Gen) Next() Event {
	return g.NextOf(1 + g.rng.IntN(g.articles))
}

// Window makes updates come in bursts, as they do in a shop: a
// window of Width consecutive articles is active and slides on by one
// article every Step events. An article thus gets about Step updates in a
// row, then none until the window comes round again — long enough for its
// session to close by session_gap. It is deterministic in the event count.
type Window struct {
	Width, Step int
	n           int // events made so far
}

// NextIn makes the next event for an article of the active window.
func (g *Gen) NextIn(w *Window) Event {
	start := w.n / w.Step
	w.n++
	return g.NextOf(1 + (start+g.rng.IntN(w.Width))%g.articles)
}

// NextOf makes the next event for article id.
func (g *Gen) NextOf(id int) Event {
	roll := g.rng.IntN(100)
	hi := g.version[id]
	switch {
	case roll < g.Malformed:
		return g.malformed(id)
	case roll < g.Malformed+g.OutOfOrder && hi > 1:
		return g.make(id, 1+g.rng.IntN(hi-1), g.newEID(), "out-of-order")
	case roll < g.Malformed+g.OutOfOrder+g.Duplicate && hi > 0:
		return g.make(id, hi, g.eids[[2]int{id, hi}], "duplicate")
	case roll < g.Malformed+g.OutOfOrder+g.Duplicate+g.Conflict && hi > 0:
		return g.make(id, hi, g.newEID(), "conflict")
	}
	g.version[id] = hi + 1
	eid := g.newEID()
	g.eids[[2]int{id, hi + 1}] = eid
	return g.make(id, hi+1, eid, "new")
}

func (g *Gen) newEID() int { g.serial++; return g.serial }

func eidString(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

func (g *Gen) make(id, version, eid int, kind string) Event {
	b := make([]byte, 0, 512)
	b = append(b, `{"metadata":{"eid":"`...)
	b = append(b, eidString(eid)...)
	b = append(b, `","occurred_at":"`...)
	b = g.now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"},"article_id":`...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, `,"brand":`...)
	b = strconv.AppendQuote(b, brands[(id+version)%len(brands)])
	b = append(b, `,"price":{"amount":"`...)
	b = strconv.AppendInt(b, int64(10+id%90), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(10+version%90), 10)
	b = append(b, `","currency":"EUR"},"sizes":[`...)
	for i := 0; i < (id+version)%4; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"size":"`...)
		b = strconv.AppendInt(b, int64(36+i), 10)
		b = append(b, `","qty":`...)
		b = strconv.AppendInt(b, int64((id*version+i)%7), 10)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	return Event{Raw: b, Article: id, Version: version, EID: eidString(eid), Kind: kind}
}

// malformed events are rejected by the mapping: a version that is not a
// number, a price that is not a decimal, an article_id that is not an int.
// (An event without article_id cannot reach us: Nakadi refuses to publish
// it to a hash-partitioned event type.)
func (g *Gen) malformed(id int) Event {
	eid := eidString(g.newEID())
	meta := fmt.Sprintf(`{"eid":%q,"occurred_at":%q}`, eid, g.now().UTC().Format(time.RFC3339Nano))
	var raw string
	switch g.rng.IntN(3) {
	case 0:
		raw = fmt.Sprintf(`{"metadata":%s,"article_id":%d,"version":"v-two","brand":"acme"}`, meta, id)
	case 1:
		raw = fmt.Sprintf(`{"metadata":%s,"article_id":%d,"version":%d,"price":{"amount":"12,50"}}`, meta, id, g.version[id]+1000)
	default:
		raw = fmt.Sprintf(`{"metadata":%s,"article_id":"A-%d","version":1,"brand":"bad id"}`, meta, id)
	}
	return Event{Raw: []byte(raw), Article: id, EID: eid, Kind: "malformed"}
}
