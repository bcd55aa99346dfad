package flatten

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzTables use every type, an ordinal and an explode.
var fuzzTables = []TableSpec{
	{Name: "main", Columns: []ColumnSpec{
		{Name: "s", Path: "s"},
		{Name: "i", Path: "i", Type: TypeInt},
		{Name: "d", Path: "d", Type: TypeDecimal},
		{Name: "b", Path: "b", Type: TypeBool},
		{Name: "ts", Path: "ts", Type: TypeTimestamp},
		{Name: "j", Path: "j", Type: TypeJSON},
		{Name: "n", Path: "x.y[1]"},
		{Name: "p", Source: SourcePartition},
	}},
	{Name: "items", Columns: []ColumnSpec{
		{Name: "s", Path: "s", Type: TypeJSON},
		{Name: "ix", Path: "items[*]", Source: SourceOrdinal},
		{Name: "v", Path: "items[*].v"},
		{Name: "q", Path: "items[*].q", Type: TypeInt},
		{Name: "t", Path: "items[*].t", Type: TypeTimestamp},
	}},
}

// FuzzFlatten: for any event, flattening never panics, Validate agrees with
// AppendRows, the CSV reads back with encoding/csv (strict quotes) into one
// field per column, and every field equals what an independent reference
// (encoding/json, math/big, time) says the mapping means.
func FuzzFlatten(f *testing.F) {
	for _, s := range []string{
		`{"s":"a,b","i":1,"d":1.5e3,"b":true,"ts":"2024-01-01T00:00:00.1234567+01:00","j":{"k":[1,"x"]},"x":{"y":[0,"one"]},"items":[{"v":"x","q":2,"t":"2024-02-29 10:00:00z"},null,{}]}`,
		`{"s":" lead","i":-0,"d":"-0.50","b":false,"ts":"1999-12-31t23:59:59Z","j":"str","items":[]}`,
		`{"s":"q\"uo\nte\r","i":9223372036854775807,"d":-1.50e-2,"j":null,"items":{"v":1}}`,
		`{"s":"\\N","i":1.0}`, `{"s":"\u0000"}`, `{"d":1e99999999}`, `{"ts":"2016-12-31T23:59:60Z"}`,
		`{"s":{"a":1,"a":2},"items":[{"v":[1,{"b":null}],"q":"3"}]}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	m, err := Compile(fuzzTables, CSV{Delimiter: ';', Null: `\N`, Header: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, event []byte) {
		var p Parser
		d, err := p.Parse(event)
		if err != nil {
			return // FuzzParse covers acceptance
		}
		ref := referenceRows(t, event)
		verr := m.Validate(d)
		if (verr != nil) != (ref == nil) {
			t.Fatalf("event %q: Validate = %v, reference rejects = %v", event, verr, ref == nil)
		}
		var firstErr error
		for ti := range fuzzTables {
			out, n, err := m.AppendRows(nil, ti, d, Lineage{Partition: "7"})
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			if verr == nil {
				checkRows(t, event, ti, out, n, ref[ti])
			}
		}
		if fmt.Sprint(firstErr) != fmt.Sprint(verr) {
			t.Fatalf("event %q: AppendRows %v, Validate %v", event, firstErr, verr)
		}
	})
}

func checkRows(t *testing.T, event []byte, ti int, out []byte, n int, want [][]*string) {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(out))
	r.Comma = ';'
	r.FieldsPerRecord = len(fuzzTables[ti].Columns)
	rows, err := r.ReadAll()
	if err != nil || len(rows) != n || n != len(want) {
		t.Fatalf("event %q table %d: %d rows (%d read back: %v), reference %d:\n%s", event, ti, n, len(rows), err, len(want), out)
	}
	for ri, row := range rows {
		for ci, field := range row {
			spec := fuzzTables[ti].Columns[ci]
			if !fieldMatches(field, want[ri][ci], spec.Type) {
				t.Fatalf("event %q table %d row %d column %s: field %q, reference %v", event, ti, ri, spec.Name, field, deref(want[ri][ci]))
			}
		}
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// fieldMatches compares a field read back with the reference value (nil:
// missing). encoding/csv turns CRLF inside quotes into LF and cannot tell a
// quoted null marker from the marker, so those are compared leniently.
func fieldMatches(field string, want *string, typ Type) bool {
	if want == nil {
		return field == `\N`
	}
	w := strings.ReplaceAll(*want, "\r\n", "\n")
	if typ == TypeJSON || strings.HasPrefix(w, "\x00json:") {
		return jsonEqual(field, strings.TrimPrefix(w, "\x00json:"))
	}
	if typ == TypeDecimal {
		a, ok1 := new(big.Rat).SetString(field)
		b, ok2 := new(big.Rat).SetString(w)
		return ok1 && ok2 && a.Cmp(b) == 0 && plainDecimal.MatchString(field)
	}
	return field == w
}

func jsonEqual(a, b string) bool {
	var x, y any
	da, db := json.NewDecoder(strings.NewReader(strings.ReplaceAll(a, "\r\n", "\n"))), json.NewDecoder(strings.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}

var (
	plainDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	rfc3339      = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$`)
)

// referenceRows computes, from encoding/json's reading of the event, the
// fields of every table (nil field: missing), or nil when the event must be
// rejected.
func referenceRows(t *testing.T, event []byte) [][][]*string {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", event, err)
	}
	var ok = true
	field := func(x any, present bool, typ Type) *string {
		s, good := refField(x, present, typ)
		ok = ok && good
		return s
	}
	get := func(m any, key string) (any, bool) {
		mm, isMap := m.(map[string]any)
		if !isMap {
			return nil, false
		}
		v, has := mm[key]
		return v, has
	}
	var main []*string
	for _, c := range fuzzTables[0].Columns[:6] {
		v, has := get(doc, c.Path)
		main = append(main, field(v, has, c.Type))
	}
	x, _ := get(doc, "x")
	y, _ := get(x, "y")
	var y1 any
	arr, isArr := y.([]any)
	if isArr && len(arr) > 1 {
		y1 = arr[1]
	}
	main = append(main, field(y1, isArr && len(arr) > 1, TypeString))
	seven := "7"
	main = append(main, &seven)

	var items [][]*string
	list, _ := get(doc, "items")
	elems, _ := list.([]any)
	for i, e := range elems {
		s, hasS := get(doc, "s")
		ix := strconv.Itoa(i)
		v, hasV := get(e, "v")
		q, hasQ := get(e, "q")
		ts, hasT := get(e, "t")
		items = append(items, []*string{field(s, hasS, TypeJSON), &ix, field(v, hasV, TypeString),
			field(q, hasQ, TypeInt), field(ts, hasT, TypeTimestamp)})
	}
	if !ok {
		return nil
	}
	return [][][]*string{{main}, items}
}

// refField renders one value per type; ok is false when it rejects.
func refField(x any, present bool, typ Type) (*string, bool) {
	if typ == "" {
		typ = TypeString
	}
	if !present || x == nil {
		return nil, true
	}
	if hasNUL(x) && (typ == TypeString || typ == TypeJSON) {
		return nil, false
	}
	var s string
	switch typ {
	case TypeString:
		switch v := x.(type) {
		case string:
			s = v
		case json.Number:
			s = string(v)
		case bool:
			s = strconv.FormatBool(v)
		default:
			b, _ := json.Marshal(v)
			s = "\x00json:" + string(b)
		}
	case TypeJSON:
		b, _ := json.Marshal(x)
		s = string(b)
	case TypeInt:
		n, isNum := x.(json.Number)
		i, err := strconv.ParseInt(string(n), 10, 64)
		if !isNum || err != nil {
			return nil, false
		}
		s = strconv.FormatInt(i, 10)
	case TypeBool:
		b, isBool := x.(bool)
		if !isBool {
			return nil, false
		}
		s = strconv.FormatBool(b)
	case TypeDecimal:
		return refDecimal(x)
	case TypeTimestamp:
		return refTimestamp(x)
	}
	return &s, true
}

func refDecimal(x any) (*string, bool) {
	var s string
	switch v := x.(type) {
	case json.Number:
		s = string(v)
		if !decimalInRange(s) {
			return nil, false
		}
	case string:
		if !plainDecimal.MatchString(v) || !decimalInRange(v) {
			return nil, false
		}
		s = v
	default:
		return nil, false
	}
	return &s, true
}

// decimalInRange: the plain notation of the number text s, keeping every
// mantissa digit, has at most 131072 digits before the point (not counting
// leading zeros) and 16383 after.
func decimalInRange(s string) bool {
	s = strings.TrimPrefix(s, "-")
	mant, expText, _ := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	exp, err := strconv.Atoi(strings.TrimPrefix(expText, "+"))
	sig := strings.TrimLeft(intPart+frac, "0")
	if expText != "" && err != nil { // an exponent beyond int
		return sig == "" && !strings.HasPrefix(expText, "-")
	}
	e := exp - len(frac) // value = mantissa digits × 10^e
	intDigits := 1
	if sig != "" {
		intDigits = max(1, len(sig)+e)
	}
	return max(0, -e) <= 16383 && intDigits <= 131072
}

func refTimestamp(x any) (*string, bool) {
	v, isStr := x.(string)
	if !isStr || !rfc3339.MatchString(v) {
		return nil, false
	}
	norm := []byte(v)
	norm[10] = 'T'
	if norm[len(norm)-1] == 'z' {
		norm[len(norm)-1] = 'Z'
	}
	tm, err := time.Parse(time.RFC3339Nano, string(norm))
	if err != nil {
		return nil, false
	}
	tm = tm.UTC().Truncate(time.Microsecond)
	if tm.Year() < 1 || tm.Year() > 9999 {
		return nil, false
	}
	s := tm.Format("2006-01-02T15:04:05.000000Z")
	return &s, true
}

func hasNUL(x any) bool {
	switch v := x.(type) {
	case string:
		return strings.ContainsRune(v, 0)
	case []any:
		for _, e := range v {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, 0) || hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// FuzzLimits: the limits are exact. For any event, a mapping with small
// limits accepts it exactly when the rows the unlimited mapping writes fit
// them (rows, bytes, every field's CSV text), rejects it with a
// *LimitError otherwise (unless a column rejects it first), and AppendRows
// over the tables in order agrees with Validate.
func FuzzLimits(f *testing.F) {
	for _, s := range []string{
		`{"s":"a,b","items":[{"v":"x"},{"v":"y"}]}`, `{"s":"` + strings.Repeat(`"`, 30) + `"}`,
		`{"d":1e39}`, `{"d":1e40}`, `{"items":[1,2,3,4]}`, `{"j":{"k":[1,2,3,4,5,6,7,8,9,10]}}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	unlimited, err := Compile(fuzzTables, CSV{Delimiter: ';', Null: `\N`})
	if err != nil {
		f.Fatal(err)
	}
	// Tight limits (most events are decided by measuring) and loose ones
	// (most are decided by the bound alone).
	tight := unlimited.WithLimits(Limits{Rows: 4, OutputBytes: 160, FieldBytes: 40})
	loose := unlimited.WithLimits(Limits{Rows: 8, OutputBytes: 4096, FieldBytes: 1024})
	f.Fuzz(func(t *testing.T, event []byte) {
		checkLimits(t, unlimited, tight, event)
		checkLimits(t, unlimited, loose, event)
	})
}

func checkLimits(t *testing.T, unlimited, m *Mapping, event []byte) {
	lim := m.Limits()
	var p Parser
	d, err := p.Parse(event)
	if err != nil || unlimited.Validate(d) != nil {
		return
	}
	rows, bytes, field := 0, 0, 0
	for ti := range fuzzTables {
		out, n, _ := unlimited.AppendRows(nil, ti, d, Lineage{Partition: "7"})
		rows, bytes, field = rows+n, bytes+len(out), max(field, widestField(out, ';'))
	}
	fits := rows <= lim.Rows && bytes <= lim.OutputBytes && field <= lim.FieldBytes
	verr := m.Validate(d)
	var le *LimitError
	if fits != (verr == nil) || (verr != nil && !errors.As(verr, &le)) {
		t.Fatalf("event %q, %+v: %d rows, %d bytes, widest field %d; Validate: %v", event, lim, rows, bytes, field, verr)
	}
	d, _ = p.Parse(event) // AppendRows counts what was appended since Parse
	var aerr error
	for ti := range fuzzTables {
		if _, _, err := m.AppendRows(nil, ti, d, Lineage{Partition: "7"}); err != nil {
			aerr = err
			break
		}
	}
	if fmt.Sprint(aerr) != fmt.Sprint(verr) {
		t.Fatalf("event %q, %+v: AppendRows %v, Validate %v", event, lim, aerr, verr)
	}
}

// widestField is the longest field of CSV text, quotes included.
func widestField(out []byte, delim byte) int {
	widest, n, quoted := 0, 0, false
	for _, c := range out {
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == delim || c == '\n'):
			widest, n = max(widest, n), 0
			continue
		}
		n++
	}
	return max(widest, n)
}
