package flatten

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestRejectError(t *testing.T) {
	m, err := Compile([]TableSpec{
		{Name: "article", Columns: []ColumnSpec{{Name: "id", Path: "id", Type: TypeInt}}},
		{Name: "size", Columns: []ColumnSpec{{Name: "qty", Path: "sizes[*].qty", Type: TypeInt}}},
	}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	d := mustParse(t, `{"id":1,"sizes":[{"qty":1},{"qty":1.5}]}`)
	var re *RejectError
	if err := m.Validate(d); !errors.As(err, &re) || re.Table != "size" || re.Column != "qty" || re.Reason != "1.5 is not an int" {
		t.Fatalf("Validate = %#v", err)
	}
	if want := "table size column qty: 1.5 is not an int"; re.Error() != want {
		t.Errorf("Error() = %q, want %q", re.Error(), want)
	}
	// AppendRows leaves dst as it was on rejection and appends otherwise.
	dst := []byte("kept\n")
	out, n, err := m.AppendRows(dst, 1, d, Lineage{})
	if err == nil || n != 0 || string(out) != "kept\n" {
		t.Errorf("rejected AppendRows: %q %d %v", out, n, err)
	}
	out, n, err = m.AppendRows(dst, 0, d, Lineage{})
	if err != nil || n != 1 || string(out) != "kept\n1\n" {
		t.Errorf("AppendRows: %q %d %v", out, n, err)
	}
}

// A Mapping is shared by goroutines, each with its own Parser (run with
// -race).
func TestMappingConcurrent(t *testing.T) {
	m, err := Compile([]TableSpec{benchTable}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	event := []byte(`{"article_id":1,"sizes":[{"size":"S","qty":1},{"size":"M","qty":2}],"attributes":{"a":1}}`)
	want := ""
	done := make(chan string)
	for range 4 {
		go func() {
			var p Parser
			var out []byte
			for range 100 {
				d, err := p.Parse(event)
				if err == nil {
					err = m.Validate(d)
				}
				if err != nil {
					done <- err.Error()
					return
				}
				out, _, _ = m.AppendRows(out[:0], 0, d, Lineage{})
			}
			done <- string(out)
		}()
	}
	for i := range 4 {
		got := <-done
		if i == 0 {
			want = got
		}
		if got != want || want == "" {
			t.Errorf("goroutine result %q, want %q", got, want)
		}
	}
}

// A decimal is measured before it is written: the measure is exactly the
// length written, for every shape of exponent.
func TestShiftedLenIsExact(t *testing.T) {
	for _, raw := range []string{"1e0", "1e3", "1.5e1", "1.50e1", "-0e5", "0e-3", "1.5e-3", "-1.5e-47", "123.456e-2",
		"123.456e-3", "123.456e-4", "0.000e2", "-0.001e2", "001.5e2", "9.99e1", "12e-1", "1e-1", "-7.25e0", "5e2"} {
		full, reason := appendDecimalNumber(nil, []byte(raw), math.MaxInt)
		if reason != "" {
			t.Fatalf("%s: %s", raw, reason)
		}
		if _, reason := appendDecimalNumber(nil, []byte(raw), len(full)); reason != "" {
			t.Errorf("%s (%s, %d bytes) does not fit %d bytes: %s", raw, full, len(full), len(full), reason)
		}
		if out, reason := appendDecimalNumber(nil, []byte(raw), len(full)-1); reason != overRoom || len(out) != 0 {
			t.Errorf("%s (%s) fits %d bytes: %q %q", raw, full, len(full)-1, out, reason)
		}
	}
}

// The row bomb of issue 15: a 260 KB event, a 200 KB string beside a
// 20 000-element exploded array, once made 4 GB of CSV. Under the default
// limits it is rejected by Validate and by AppendRows, naming the limit,
// and AppendRows took no more than the limit's memory.
func TestRowBombIsBounded(t *testing.T) {
	m, err := Compile([]TableSpec{{Name: "t", Columns: []ColumnSpec{
		{Name: "s", Path: "s"}, {Name: "v", Path: "a[*]", Type: TypeDecimal},
	}}}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	m = m.WithLimits(Limits{EventBytes: 8 << 20, Rows: 10000, OutputBytes: 16 << 20, FieldBytes: 1 << 20})
	event := []byte(`{"s":"` + strings.Repeat("x", 200<<10) + `","a":[` + strings.Repeat("1,", 19999) + `1]}`)
	var p Parser
	d, err := p.Parse(event)
	if err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if err := m.Validate(d); !errors.As(err, &le) || le.Limit != LimitOutputBytes || Cause(err) != CauseLimitBytes {
		t.Fatalf("Validate: %v", err)
	}
	out, n, err := m.AppendRows(nil, 0, d, Lineage{})
	if !errors.As(err, &le) || le.Limit != LimitOutputBytes || out != nil || n != 0 {
		t.Fatalf("AppendRows: %d rows, %d bytes, %v", n, len(out), err)
	}
	// Narrow rows: the row limit is the one that holds.
	d, _ = p.Parse([]byte(`{"s":"x","a":[` + strings.Repeat("1,", 19999) + `1]}`))
	if err := m.Validate(d); !errors.As(err, &le) || le.Limit != LimitRows || Cause(err) != CauseLimitRows ||
		err.Error() != "table t: more than 10000 rows (limits.max_rows_per_event = 10000)" {
		t.Fatalf("Validate: %v", err)
	}
	// A decimal bomb in every row: 128 KB of digits each.
	d, _ = p.Parse([]byte(`{"s":"x","a":[` + strings.Repeat("1e131071,", 199) + `1]}`))
	if err := m.Validate(d); !errors.As(err, &le) || le.Limit != LimitOutputBytes {
		t.Fatalf("Validate: %v", err)
	}
}

func TestCause(t *testing.T) {
	m, err := Compile([]TableSpec{{Name: "t", Columns: []ColumnSpec{
		{Name: "id", Path: "id", Type: TypeInt, Required: true}, {Name: "s", Path: "s"},
	}}}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	m = m.WithLimits(Limits{EventBytes: 100, FieldBytes: 64})
	var p Parser
	cause := func(event string) string {
		if err := CheckEventBytes([]byte(event), m.Limits()); err != nil {
			return Cause(err)
		}
		d, err := p.Parse([]byte(event))
		if err == nil {
			err = m.Validate(d)
		}
		return Cause(err)
	}
	for event, want := range map[string]string{
		`{"id":1}`:                  "",
		`{"id":`:                    CauseParse,
		`[1]`:                       CauseParse,
		"{\"id\":1,\"s\":\"\xff\"}": CauseUTF8,
		`{"id":"x"}`:                CauseType,
		`{"s":"x"}`:                 CauseRequired,
		`{"id":null}`:               CauseRequired,
		`{"id":1,"s":"` + strings.Repeat("y", 65) + `"}`: CauseLimitField,
		`{"id":1,"s":"` + strings.Repeat("y", 99) + `"}`: CauseLimitEvent,
	} {
		if got := cause(event); got != want {
			t.Errorf("%.40s: cause %q, want %q", event, got, want)
		}
	}
}
