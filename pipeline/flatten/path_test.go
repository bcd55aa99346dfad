package flatten

import (
	"errors"
	"testing"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in, canonical string
		explodes      bool
	}{
		{"price", "price", false},
		{"price.amount", "price.amount", false},
		{"metadata.occurred_at", "metadata.occurred_at", false},
		{"tags[0]", "tags[0]", false},
		{"tags[12]", "tags[12]", false},
		{"sizes[*]", "sizes[*]", true},
		{"sizes[*].qty", "sizes[*].qty", true},
		{"orders[*].items[*].sku", "orders[*].items[*].sku", true},
		{"matrix[*][0]", "matrix[*][0]", true},
		{"m[0][1]", "m[0][1]", false},
		{`["a.b"]`, `["a.b"]`, false},
		{`["a.b"].c`, `["a.b"].c`, false},
		{`x["a.b"]["c[d]"]`, `x["a.b"]["c[d]"]`, false},
		{`x["say \"hi\""]`, `x["say \"hi\""]`, false},
		{`x["plain"]`, "x.plain", false},
		{`x["\u00e9t\u00e9"]`, "x.été", false},
		{`x[""]`, `x[""]`, false},
		{`["tab\there"]`, `["tab\there"]`, false},
		{"first name.last name", "first name.last name", false},
		{"émoji😀", "émoji😀", false},
		{`back\slash`, `back\slash`, false},
	} {
		p, err := ParsePath(tc.in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tc.in, err)
			continue
		}
		if got := p.String(); got != tc.canonical {
			t.Errorf("ParsePath(%q).String() = %q, want %q", tc.in, got, tc.canonical)
		}
		if p.Explodes() != tc.explodes {
			t.Errorf("ParsePath(%q).Explodes() = %v", tc.in, p.Explodes())
		}
		back, err := ParsePath(p.String())
		if err != nil || back.String() != p.String() || len(back.steps) != len(p.steps) {
			t.Errorf("round trip of %q: %v %v", tc.in, back, err)
		}
	}
}

func TestParsePathErrors(t *testing.T) {
	for _, tc := range []struct {
		in     string
		offset int
	}{
		{"", 0},
		{"sizes[*.qty", 7},
		{"a..b", 2},
		{".a", 0},
		{"a.", 2},
		{"a[", 2},
		{"a[]", 2},
		{"a[-1]", 2},
		{"a[01]", 2},
		{"a[1", 3},
		{"a[99999999999]", 2},
		{"[0].a", 0},
		{"[*]", 0},
		{`a["b`, 4},
		{`a["b"`, 5},
		{`a["\x"]`, 3},
		{`a["b"]c`, 6},
		{"a]b", 1},
		{`a"b`, 1},
		{"a\xffb", 1},
	} {
		_, err := ParsePath(tc.in)
		var pe *PathError
		if !errors.As(err, &pe) {
			t.Errorf("ParsePath(%q) = %v, want a *PathError", tc.in, err)
			continue
		}
		if pe.Offset != tc.offset {
			t.Errorf("ParsePath(%q): offset %d (%v), want %d", tc.in, pe.Offset, err, tc.offset)
		}
	}
	_, err := ParsePath("sizes[*.qty")
	if want := `"sizes[*.qty" is not a valid path: expected ']' at byte 7`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
