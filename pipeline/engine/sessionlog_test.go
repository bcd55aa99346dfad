package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"materializer/pipeline/compact"
	"materializer/pipeline/nakadi"
)

// logSegments lists the session log's files in the staging directory.
func (h *harness) logSegments(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.dir, "staging"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), logEventType+".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// Best events of open sessions go to session log segments; a segment that
// fills up is followed by the next; a restart reads the events from the
// segments; once every session that had its event in a segment closed, the
// segment goes — file and record.
func TestSessionLogSegmentsRollSurviveRestartsAndGo(t *testing.T) {
	h := newHarness(t)
	h.opts = Options{RollMaxBytes: 1 << 20, RollMaxAge: time.Hour, Compression: "none", LogSegmentSize: 1 << 10}
	h.types = []EventType{testEventType(t, "article", map[string]string{"key": "id", "order": "v", "gap": "20s", "max": "10m"},
		[]string{"article id:int v:int"})}
	h.open()
	defer h.close()
	batch := func(p string, keys []int, version int) *nakadi.Batch {
		b := &nakadi.Batch{StreamID: "s1", Cursor: nakadi.Cursor{EventType: "article", Partition: p}}
		for _, k := range keys {
			b.Events = append(b.Events, []byte(fmt.Sprintf(`{"id":%d,"v":%d,"pad":"%s"}`, k, version, strings.Repeat("x", 64))))
		}
		h.offsets[p] += len(keys)
		b.Cursor.Offset = offset(h.offsets[p])
		return b
	}
	group := func(g int) []int { // keys 20g .. 20g+19
		keys := make([]int, 20)
		for i := range keys {
			keys[i] = 20*g + i
		}
		return keys
	}
	// Three steps 5 s apart, 20 keys each, two versions: each step's events
	// fill a segment (2 KiB of 1 KiB), and every session stays open.
	for g := range 3 {
		h.step([]*nakadi.Batch{batch("0", group(g), 1), batch("0", group(g), 2)}, nil)
		h.clock = h.clock.Add(5 * time.Second)
	}
	if n := len(h.logSegments(t)); n != 3 {
		t.Fatalf("%d session log segments, want one per step: %v", n, h.logSegments(t))
	}
	h.close()
	h.open() // the open sessions' events are read from the segments at their close
	h.clock = h.clock.Add(time.Minute)
	h.step(nil, nil)
	st := h.e.Status().EventTypes[0].Counters
	if st.Open != 0 || st.Main != 60 || st.Superseded != 60 {
		t.Fatalf("counters after the sessions closed: %+v", st)
	}
	rows := h.files(t)
	for k := range 60 {
		if !strings.Contains(rows, fmt.Sprintf("\n%d,2\n", k)) && !strings.HasSuffix(rows, fmt.Sprintf("\n%d,2", k)) {
			t.Fatalf("main row of key %d at version 2 missing:\n%s", k, rows)
		}
	}
	if segs := h.logSegments(t); len(segs) != 0 {
		t.Fatalf("segments no session needs stayed: %v", segs)
	}
	files, err := h.db.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if IsSessionLog(f) {
			t.Fatalf("record of a segment no session needs stayed: %+v", f)
		}
	}
}

// A record upgraded from state format 1 holds its event inline; closing
// reads it from there.
func TestUpgradedSessionRecordHoldsItsEvent(t *testing.T) {
	v1 := compact.KeyState{Open: true, HasHi: true, Hi: []byte{1}, OpenedAt: 5, LastAt: 5}
	enc := v1.AppendEncoded(nil)
	enc = enc[:len(enc)-1] // format 1 had no Filed
	newState, head, ok, err := upgradeSession(42, enc, "001-0001-000000000000000007")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	var ks compact.KeyState
	if err := ks.Decode(newState); err != nil || ks.Filed != 42 || !ks.Open {
		t.Fatalf("key state %+v %v", ks, err)
	}
	rest, err := ks.DecodePrefix(append(head, `{"id":1}`...))
	if err != nil || ks.Filed != 42 {
		t.Fatalf("%+v %v", ks, err)
	}
	offset, body, err := splitHead(rest)
	if err != nil || offset != "001-0001-000000000000000007" {
		t.Fatal(offset, err)
	}
	raw, err := (&Engine{}).bestOf(&step{}, body)
	if err != nil || string(raw) != `{"id":1}` {
		t.Fatalf("%q %v", raw, err)
	}
	closed := compact.KeyState{HasHi: true, Hi: []byte{1}, ClosedAt: 5}
	if _, _, ok, err := upgradeSession(42, closed.AppendEncoded(nil), ""); ok || err != nil {
		t.Fatalf("a closed key's timer upgraded: %v %v", ok, err)
	}
}
