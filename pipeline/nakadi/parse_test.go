package nakadi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.want")

// render prints a parsed batch in the readable form of the .want files.
func render(b *Batch) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "event_type: %q\npartition: %q\noffset: %q\ncursor_token: %q\ninfo: %q\nevents: %d\n",
		b.Cursor.EventType, b.Cursor.Partition, b.Cursor.Offset, b.Cursor.CursorToken, b.Info, len(b.Events))
	for i, e := range b.Events {
		fmt.Fprintf(&sb, "event %d: %s\n", i, e)
	}
	return sb.String()
}

// TestGoldenLines parses lines built from the spec's examples (wire layout of
// docs/nakadi.md §4.2; metadata example values of the OpenAPI EventMetadata and
// DataChangeEvent definitions) and compares with reviewed .want files.
func TestGoldenLines(t *testing.T) {
	lines, err := filepath.Glob("testdata/golden/*.line")
	if err != nil || len(lines) == 0 {
		t.Fatalf("no golden lines: %v", err)
	}
	for _, path := range lines {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := newStreamReader(bytes.NewReader(raw), 0, 0, nil).next(context.Background())
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got := render(b)
			if ref, ok := refParse(bytes.TrimSuffix(raw, []byte("\n"))); !ok || render(ref) != got {
				t.Errorf("differs from encoding/json:\n%s\nwant\n%s", got, render(ref))
			}
			want := strings.TrimSuffix(path, ".line") + ".want"
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(exp) {
				t.Errorf("got\n%s\nwant\n%s", got, exp)
			}
		})
	}
}

// refParse is the reference semantics of a batch line, with encoding/json:
// an object; "cursor" an object whose four fields are strings or null;
// "events" absent, null or an array; info.debug used when it is a string;
// other keys ignored; the last of duplicate keys wins.
func refParse(line []byte) (*Batch, bool) {
	if t := bytes.TrimLeft(line, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(line, &top) != nil {
		return nil, false
	}
	b := &Batch{}
	raw, ok := top["cursor"]
	if !ok || !isKind(raw, '{') {
		return nil, false
	}
	var cur map[string]json.RawMessage
	if json.Unmarshal(raw, &cur) != nil {
		return nil, false
	}
	for name, dst := range map[string]*string{"partition": &b.Cursor.Partition, "offset": &b.Cursor.Offset,
		"event_type": &b.Cursor.EventType, "cursor_token": &b.Cursor.CursorToken} {
		if v, ok := cur[name]; ok && json.Unmarshal(v, dst) != nil {
			return nil, false
		}
	}
	if ev, ok := top["events"]; ok && !bytes.Equal(ev, []byte("null")) {
		if !isKind(ev, '[') {
			return nil, false
		}
		var evs []json.RawMessage
		if json.Unmarshal(ev, &evs) != nil {
			return nil, false
		}
		for _, e := range evs {
			b.Events = append(b.Events, []byte(e))
		}
	}
	if info, ok := top["info"]; ok && isKind(info, '{') {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(info, &m)
		if d, ok := m["debug"]; ok && isKind(d, '"') {
			_ = json.Unmarshal(d, &b.Info)
		}
	}
	return b, true
}

func isKind(raw json.RawMessage, first byte) bool { return len(raw) > 0 && raw[0] == first }

// FuzzParseBatch checks the hand-written parser against encoding/json: every
// line encoding/json accepts as a batch parses to the same cursor, info and
// event bytes; no input panics; a line it accepts has events inside it.
func FuzzParseBatch(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/golden/*.line")
	for _, s := range seeds {
		raw, _ := os.ReadFile(s)
		f.Add(bytes.TrimSuffix(raw, []byte("\n")))
	}
	for _, s := range []string{
		`{"cursor":{}}`, `{"cursor":null}`, `{}`, `[]`, `{"cursor":{"partition":"1","partition":null}}`,
		`{"cursor":{"partition":"\u0030"},"events":null,"info":null}`, `{"curs\u006fr":{"offset":"x"}}`,
		`{"cursor":{"offset":1}}`, `{"cursor":{},"events":[{"a":"\\"}, [[]], {}]}`, `{"cursor":{},"events":[1,]}`,
		`{"cursor":{},"events":[{"a":[}]}`, `{"cursor":{},"info":{"debug":1}}`, `{"cursor":{"x":"\xff"}}`,
		`{"cursor":{"event_type":"\xffab"}}`, `{"cursor":{}} x`, `{"cursor":{},"events":[nul]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		got, err := parseLine(line)
		ref, ok := refParse(line)
		if ok && err != nil {
			t.Fatalf("encoding/json accepts, parser fails: %v", err)
		}
		if err != nil {
			return
		}
		for _, e := range got.Events {
			if len(e) == 0 || !bytes.Contains(line, e) {
				t.Fatalf("event %q not in line", e)
			}
		}
		if ok && render(got) != render(ref) {
			t.Fatalf("got\n%s\nwant\n%s", render(got), render(ref))
		}
	})
}

func TestParseRejects(t *testing.T) {
	for _, line := range []string{
		``, `{`, `{"cursor":{}`, `{"events":[]}`, `{"cursor":"x"}`, `{"cursor":{"offset":1}}`,
		`{"cursor":{},"events":{}}`, `{"cursor":{},"events":[{"a":"b}]}`, `{"cursor":{},"events":[{]}`,
		`{"cursor":{},"events":[1 2]}`, `{"cursor":{}}{}`, `{"cursor":{},}`, `{"cursor" {}}`, `{cursor:{}}`,
		`{"cursor":{},"events":[{"a":[1,2}]}`,
	} {
		if _, err := parseLine([]byte(line)); !errors.Is(err, ErrMalformedBatch) {
			t.Errorf("%q: err = %v, want ErrMalformedBatch", line, err)
		}
	}
}

func TestReaderLinesOfAnySize(t *testing.T) {
	big := strings.Repeat("x", 5<<20)
	var stream bytes.Buffer
	fmt.Fprintf(&stream, `{"cursor":{"partition":"0","offset":"001-0001-000000000000000001","event_type":"e","cursor_token":"t"},"events":[{"big":"%s"}]}`+"\n", big)
	stream.WriteString("\n") // blank lines are skipped
	fmt.Fprintf(&stream, `{"cursor":{"partition":"0","offset":"001-0001-000000000000000001","event_type":"e","cursor_token":"t"}}`+"\r\n")
	stream.WriteString(`{"cursor":{"partition":"0"`) // cut inside a line
	r := newStreamReader(&stream, 64<<10, 0, nil)
	b, err := r.next(context.Background())
	if err != nil || len(b.Events) != 1 || len(b.Events[0]) != len(big)+10 {
		t.Fatalf("big line: %v", err)
	}
	if b, err = r.next(context.Background()); err != nil || !b.keepAlive() {
		t.Fatalf("keep-alive: %v %+v", err, b)
	}
	if _, err = r.next(context.Background()); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut line: err = %v", err)
	}
}

func TestReaderLineLimit(t *testing.T) {
	line := `{"cursor":{},"events":["` + strings.Repeat("y", 100<<10) + `"]}` + "\n"
	if _, err := newStreamReader(strings.NewReader(line), 4<<10, 64<<10, nil).next(context.Background()); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
}

func TestEventsOwnTheirBuffer(t *testing.T) {
	line := `{"cursor":{"partition":"0","offset":"o","event_type":"e","cursor_token":"t"},"events":[{"a":1},{"b":2}]}` + "\n"
	stream := strings.Repeat(line, 3)
	r := newStreamReader(strings.NewReader(stream), 0, 0, nil)
	first, _ := r.next(context.Background())
	second, _ := r.next(context.Background())
	if string(first.Events[0]) != `{"a":1}` || string(second.Events[1]) != `{"b":2}` {
		t.Fatalf("events: %s %s", first.Events[0], second.Events[1])
	}
	first.Events[0] = append(first.Events[0], 'X') // capacity is capped: must not clobber event 1
	if string(first.Events[1]) != `{"b":2}` {
		t.Fatalf("append clobbered the next event: %s", first.Events[1])
	}
}

func TestCompareOffsets(t *testing.T) {
	ordered := []string{"begin", "001-0001--1", "001-0001-000000000000000000", "001-0001-000000000000000009",
		"001-0001-000000000000000010", "001-0002-000000000000000000"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareOffsets(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareOffsets(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	for off, want := range map[string]int64{"001-0001--1": -1, "001-0001-000000000000000123": 123, "5": 5} {
		if n, ok := offsetNumber(off); !ok || n != want {
			t.Errorf("offsetNumber(%q) = %d, %v", off, n, ok)
		}
	}
	if _, ok := offsetNumber("BEGIN"); ok {
		t.Error("offsetNumber(BEGIN) ok")
	}
}

func TestQuoteOrBackslash(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			var w [8]byte
			for i := range w {
				w[i] = 'a'
			}
			w[pos] = byte(c)
			want := c == '"' || c == '\\'
			if got := quoteOrBackslash(uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
				uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56); got != want {
				t.Fatalf("byte %#x at %d: %v", c, pos, got)
			}
		}
	}
}

func TestScanStringAtEveryLength(t *testing.T) {
	for n := range 40 {
		for esc := -1; esc < n-1; esc++ {
			body := []byte(strings.Repeat("x", n))
			if esc >= 0 {
				body[esc], body[esc+1] = '\\', '"'
			}
			line := append(append([]byte{'"'}, body...), '"', ',')
			end, hasEsc, err := scanString(line, 0)
			if err != nil || end != n+2 || hasEsc != (esc >= 0) {
				t.Fatalf("n=%d esc=%d: end=%d esc=%v err=%v", n, esc, end, hasEsc, err)
			}
			if _, _, err := scanString(line[:n+1], 0); err == nil {
				t.Fatalf("n=%d esc=%d: unterminated accepted", n, esc)
			}
		}
	}
}
