package flatten

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func mustParse(t testing.TB, s string) *Doc {
	t.Helper()
	var p Parser
	d, err := p.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return d
}

func lookup(t testing.TB, d *Doc, path string) Value {
	t.Helper()
	p, err := ParsePath(path)
	if err != nil {
		t.Fatal(err)
	}
	return d.Lookup(p)
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{``, "invalid JSON: unexpected end of input at byte 0"},
		{`   `, "invalid JSON: unexpected end of input at byte 3"},
		{`[]`, "not a JSON object: the event is an array"},
		{`"x"`, "not a JSON object: the event is a string"},
		{`12`, "not a JSON object: the event is a number"},
		{`null`, "not a JSON object: the event is a null"},
		{`{`, "invalid JSON: unexpected end of input looking for an object key at byte 1"},
		{`{"a":1,}`, `invalid JSON: unexpected character '}' looking for an object key at byte 7`},
		{`{"a":1}x`, `invalid JSON: unexpected character 'x' after the top-level value at byte 7`},
		{`{"a":1} {}`, `invalid JSON: unexpected character '{' after the top-level value at byte 8`},
		{`{"a" 1}`, `invalid JSON: unexpected character '1' after an object key at byte 5`},
		{`{"a":01}`, `invalid JSON: unexpected character '1' after a member at byte 6`},
		{`{"a":-}`, `invalid JSON: invalid number: a digit must follow '-' at byte 6`},
		{`{"a":1.}`, `invalid JSON: invalid number: a digit must follow '.' at byte 7`},
		{`{"a":1e}`, `invalid JSON: invalid number: a digit must follow the exponent at byte 7`},
		{`{"a":tru}`, `invalid JSON: unexpected character 't' looking for a value at byte 5`},
		{`{"a":"x` + "\x01" + `"}`, `invalid JSON: control character in string at byte 7`},
		{`{"a":"\q"}`, `invalid JSON: invalid escape in string at byte 6`},
		{`{"a":"\u12"}`, `invalid JSON: invalid escape in string at byte 6`},
		{"{\"a\":\"\xff\"}", `invalid JSON: invalid UTF-8 at byte 6`},
		{"{\"a\":\"\xed\xa0\x80\"}", `invalid JSON: invalid UTF-8 at byte 6`}, // surrogate in UTF-8
		{"{\"\xc3\":1}", `invalid JSON: invalid UTF-8 at byte 2`},
		{"\xef\xbb\xbf{}", `invalid JSON: unexpected byte 0xef looking for a value at byte 0`}, // BOM
		{`{"a":[1,2}`, `invalid JSON: unexpected character '}' after a member at byte 9`},
		{strings.Repeat("[", 10001), "invalid JSON: exceeded max depth at byte 10000"},
	} {
		var p Parser
		_, err := p.Parse([]byte(tc.in))
		var pe *ParseError
		if !errors.As(err, &pe) || err.Error() != tc.err {
			t.Errorf("Parse(%.40q) = %v, want %s", tc.in, err, tc.err)
		}
	}
}

func TestParseDepthLimit(t *testing.T) {
	deep := `{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + "}"
	if !json.Valid([]byte(deep)) {
		t.Fatal("encoding/json rejects depth 10000")
	}
	mustParse(t, deep)
	deeper := `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}"
	var p Parser
	if _, err := p.Parse([]byte(deeper)); err == nil || json.Valid([]byte(deeper)) {
		t.Errorf("depth 10001: err %v, json.Valid %v", err, json.Valid([]byte(deeper)))
	}
}

func TestLookup(t *testing.T) {
	d := mustParse(t, ` {"a":{"b":[10,{"c":"x\"y"},null,true]},"dup":1,"dup":2,"e\u0073c":"\u00e9","a.b":3,
	  "n":-0.5e3,"s":"","o":{"z":1,"y":[]}} `)
	for _, tc := range []struct {
		path, text string
		kind       Kind
	}{
		{"a.b[0]", "10", KindNumber},
		{"a.b[1].c", `x"y`, KindString},
		{"a.b[2]", "", KindNull},
		{"a.b[3]", "true", KindBool},
		{"a.b[4]", "", KindMissing},
		{"a.b[0].c", "", KindMissing},
		{"a.x", "", KindMissing},
		{"a.b.c", "", KindMissing},
		{"dup", "2", KindNumber},
		{"esc", "é", KindString},
		{`["a.b"]`, "3", KindNumber},
		{"n", "-0.5e3", KindNumber},
		{"s", "", KindString},
		{"o", `{"z":1,"y":[]}`, KindObject},
		{"a.b", `[10,{"c":"x\"y"},null,true]`, KindArray},
		{"a.b[*]", "", KindMissing},
	} {
		v := lookup(t, d, tc.path)
		if v.Kind() != tc.kind || v.Text() != tc.text {
			t.Errorf("%s: %v %q, want %v %q", tc.path, v.Kind(), v.Text(), tc.kind, tc.text)
		}
	}
	if v := lookup(t, d, "a.b[1].c"); string(v.Raw()) != `"x\"y"` {
		t.Errorf("Raw = %s", v.Raw())
	}
	if !lookup(t, d, "a.b[3]").Bool() || lookup(t, d, "o").Len() != 2 {
		t.Error("Bool/Len")
	}
}

func TestAppendJSON(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{`{ "b" : 1 , "a" : [ 1.50 , -0 , 1E+3 ] }`, `{"b":1,"a":[1.50,-0,1E+3]}`},
		{`{"s":"<&>\u2028\/é\u00e9\t\u0001"}`, `{"s":"<&>` + "\u2028" + `/éé\t\u0001"}`},
		{`{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{`{"a":1,"\u0061":2}`, `{"a":2}`},
		{`{"x":"\ud800","y":"\ud83d\ude00"}`, `{"x":"` + "\ufffd" + `","y":"😀"}`},
		{`{}`, `{}`},
		{`{"a":{},"b":[],"c":[{}]}`, `{"a":{},"b":[],"c":[{}]}`},
	} {
		d := mustParse(t, tc.in)
		if got := string(d.Root().AppendJSON(nil)); got != tc.out {
			t.Errorf("AppendJSON(%s) = %s, want %s", tc.in, got, tc.out)
		}
	}
	// A large object with duplicates takes the map path.
	var b strings.Builder
	b.WriteString("{")
	for i := range 40 {
		fmt.Fprintf(&b, `"k%d":1,`, i)
	}
	b.WriteString(`"k0":2}`)
	d := mustParse(t, b.String())
	out := string(d.Root().AppendJSON(nil))
	if !strings.HasPrefix(out, `{"k0":2,"k1":1,`) || strings.Count(out, `"k0"`) != 1 {
		t.Errorf("large object: %s", out)
	}
}

// The parser agrees with encoding/json on acceptance and values.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\ud800"}`, `[1]`, `{"a":1e5,"b":-0.0}`,
		`{"a":"x\"y\\z"}`, `{"a":1,"a":2}`, " {\"a\" :\t[ true , false ]}\r\n", `{"a":01}`, "{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Parser
		d, err := p.Parse(b)
		trimmed := bytes.TrimLeft(b, " \t\r\n")
		want := json.Valid(b) && utf8.Valid(b) && len(trimmed) > 0 && trimmed[0] == '{'
		if (err == nil) != want {
			t.Fatalf("Parse(%q) err = %v, encoding/json valid = %v", b, err, want)
		}
		if err != nil {
			return
		}
		if n := countNodes(b); n < len(d.tape) {
			t.Fatalf("countNodes(%q) = %d, the tape has %d nodes", b, n, len(d.tape))
		}
		var ref any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&ref); err != nil {
			t.Fatal(err)
		}
		if got := toAny(d.Root()); !reflect.DeepEqual(got, ref) {
			t.Fatalf("values differ for %q:\n got %#v\nwant %#v", b, got, ref)
		}
		compact := d.Root().AppendJSON(nil)
		var back any
		dec = json.NewDecoder(bytes.NewReader(compact))
		dec.UseNumber()
		if err := dec.Decode(&back); err != nil || !reflect.DeepEqual(back, ref) {
			t.Fatalf("compact JSON %q of %q does not read back: %v", compact, b, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, compact); err != nil || !bytes.Equal(buf.Bytes(), compact) {
			t.Fatalf("AppendJSON is not compact: %q", compact)
		}
	})
}

// toAny converts a Value to what encoding/json decodes with UseNumber.
func toAny(v Value) any {
	switch v.Kind() {
	case KindNull:
		return nil
	case KindBool:
		return v.Bool()
	case KindNumber:
		return json.Number(v.Raw())
	case KindString:
		return v.Text()
	case KindArray:
		out := []any{}
		j := v.i + 1
		for range v.Len() {
			out = append(out, toAny(Value{v.d, j}))
			j = int32(v.d.tape[j].next)
		}
		return out
	case KindObject:
		out := map[string]any{}
		k := v.i + 1
		for range v.Len() {
			out[Value{v.d, k}.Text()] = toAny(Value{v.d, k + 1})
			k = int32(v.d.tape[k+1].next)
		}
		return out
	}
	panic("missing")
}

// The buffers a huge event made the parser grow are dropped at the next
// small event, so one huge event does not hold its memory for the parser's
// lifetime (the memory budget holds over time).
func TestParserShrinksAfterAHugeEvent(t *testing.T) {
	m, err := Compile([]TableSpec{{Name: "t", Columns: []ColumnSpec{{Name: "s", Path: "s"}, {Name: "v", Path: "a[*]", Type: TypeInt}}}}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	var p Parser
	huge := []byte(`{"s":"` + strings.Repeat("x", 1<<20) + `","a":[1,2],"b":[` + strings.Repeat("1,", 1<<18) + `1]}`)
	d, err := p.Parse(huge)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.AppendRows(nil, 0, d, Lineage{}); err != nil {
		t.Fatal(err)
	}
	if cap(p.doc.tape) < 1<<18 || cap(p.doc.cache) < 1<<20 {
		t.Fatalf("the huge event did not grow the buffers: tape %d, cache %d", cap(p.doc.tape), cap(p.doc.cache))
	}
	for range 3 {
		d, err := p.Parse([]byte(`{"s":"small","a":[1,2]}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.AppendRows(nil, 0, d, Lineage{}); err != nil {
			t.Fatal(err)
		}
	}
	if tape, cache := cap(p.doc.tape), cap(p.doc.cache); tape > keepNodes || cache > keepBytes {
		t.Fatalf("after small events: tape %d nodes, cache %d bytes", tape, cache)
	}
	// Above 1 MiB the tape is made at its size once, not grown (growing
	// holds the old and the new array at once); Shrink drops it.
	if _, err := p.Parse(huge); err != nil {
		t.Fatal(err)
	}
	if n, want := cap(p.doc.tape), countNodes(huge); n != want || len(p.doc.tape) > want {
		t.Fatalf("tape of %d nodes made with capacity %d, want %d", len(p.doc.tape), n, want)
	}
	p.Shrink()
	if cap(p.doc.tape) != 0 || cap(p.doc.cache) > keepBytes {
		t.Fatalf("Shrink kept tape %d, cache %d", cap(p.doc.tape), cap(p.doc.cache))
	}
}
