package compact

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func ev(v int, eid string) Event {
	o, _ := AppendNumber(nil, []byte(strconv.Itoa(v)))
	return Event{Order: o, EID: []byte(eid)}
}

var win = Window{Gap: time.Minute, Max: 10 * time.Minute, Retention: time.Hour}

func sec(s int) int64 { return int64(s) * int64(time.Second) }

// Every row of the decision table of docs/design.md.
func TestDecideTable(t *testing.T) {
	type step struct {
		at   int
		v    int
		eid  string
		want Outcome
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"no session, hi unknown: open", []step{{0, 5, "a", Opened}}},
		{"open session, newer: replace", []step{{0, 5, "a", Opened}, {1, 6, "b", Replaced}}},
		{"equal value, same eid: duplicate", []step{{0, 5, "a", Opened}, {1, 5, "a", Duplicate}}},
		{"equal value, other eid: correction", []step{{0, 5, "a", Opened}, {1, 5, "b", Correction}}},
		{"lower value: correction", []step{{0, 5, "a", Opened}, {1, 4, "b", Correction}}},
		{"lower than hi after a replace: correction", []step{{0, 5, "a", Opened}, {1, 7, "c", Replaced}, {2, 6, "b", Correction}}},
		{"'10' > '9' numerically", []step{{0, 9, "a", Opened}, {1, 10, "b", Replaced}}},
		{"both eids absent, equal value: duplicate", []step{{0, 5, "", Opened}, {1, 5, "", Duplicate}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var st KeyState
			for i, s := range c.steps {
				if got := Decide(&st, ev(s.v, s.eid), sec(s.at), win); got != s.want {
					t.Fatalf("step %d (v=%d eid=%s): %v, want %v", i, s.v, s.eid, got, s.want)
				}
			}
		})
	}
}

func TestDecideAcrossSessions(t *testing.T) {
	var st KeyState
	if Decide(&st, ev(5, "a"), 0, win) != Opened {
		t.Fatal("open")
	}
	st.Close(sec(60))
	// hi(k) is remembered after the close: lower and equal-other-eid are corrections,
	// same eid is a duplicate, higher opens a new session.
	for _, c := range []struct {
		e    Event
		want Outcome
	}{{ev(4, "x"), Correction}, {ev(5, "y"), Correction}, {ev(5, "a"), Duplicate}, {ev(6, "b"), Opened}} {
		if got := Decide(&st, c.e, sec(100), win); got != c.want {
			t.Fatalf("%v: got %v want %v", c.e, got, c.want)
		}
	}
	if !st.Open || st.OpenedAt != sec(100) {
		t.Fatalf("session not reopened: %+v", st)
	}
}

func TestRetentionExpiry(t *testing.T) {
	var st KeyState
	Decide(&st, ev(5, "a"), 0, win)
	st.Close(sec(60))
	if st.Expired(sec(60)+int64(win.Retention)-1, win) {
		t.Fatal("expired too early")
	}
	if !st.Expired(sec(60)+int64(win.Retention), win) {
		t.Fatal("not expired at retention")
	}
	// After expiry hi is forgotten: a lower version opens a new session.
	if got := Decide(&st, ev(1, "z"), sec(60)+int64(win.Retention), win); got != Opened {
		t.Fatalf("after expiry: %v", got)
	}
}

func TestDeadline(t *testing.T) {
	var st KeyState
	Decide(&st, ev(1, "a"), 0, win)
	if d := st.Deadline(win); d != sec(60) {
		t.Fatalf("gap deadline %d", d)
	}
	// A hot key: an event every 30 s keeps extending the gap, but session_max caps it.
	for i := 1; i <= 40; i++ {
		Decide(&st, ev(1+i, "a"), sec(30*i), win)
	}
	if d := st.Deadline(win); d != int64(win.Max) {
		t.Fatalf("max deadline %v, want %v", time.Duration(d), win.Max)
	}
}

// The pure core must not import I/O packages (docs/architecture.md).
func TestNoIOImports(t *testing.T) {
	banned := []string{"os", "net", "net/http", "syscall", "io/fs", "github.com/cockroachdb/pebble", "github.com/aws", "github.com/nats-io", "github.com/rs/zerolog", "time/tzdata"}
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, b := range banned {
				if p == b || strings.HasPrefix(p, b+"/") {
					t.Errorf("%s imports %s", f, p)
				}
			}
		}
	}
}
