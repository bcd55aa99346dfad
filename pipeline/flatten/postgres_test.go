package flatten

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"materializer/internal/pgtest"
)

// pgCase is one event of TestPostgresCopy with what PostgreSQL must hold
// after COPY: s as exact text (nil: NULL), the other columns as SQL
// literals compared with IS NOT DISTINCT FROM, and d also as text (NUMERIC
// keeps the scale, so 1.50 stays 1.50).
type pgCase struct {
	event string
	s     *string
	i     string
	d     string // literal; its text must equal d::text
	b     string
	ts    string
	j     string
}

func str(s string) *string { return &s }

var pgCases = []pgCase{
	{`{"s":"plain","i":42,"d":1.50,"b":true,"ts":"2024-03-01T12:34:56.1234567+01:00","j":{"b":1,"a":[1,"x"]}}`,
		str("plain"), "42", "1.50", "true", "'2024-03-01 11:34:56.123456'", `'{"b":1,"a":[1,"x"]}'`},
	{`{"s":"","i":-0,"d":-0,"b":false,"ts":"2024-02-29t23:00:00z","j":""}`,
		str(""), "0", "0", "false", "'2024-02-29 23:00:00'", `'""'`},
	{`{"s":null,"i":null,"d":null,"b":null,"ts":null,"j":null}`, nil, "NULL", "NULL", "NULL", "NULL", "NULL"},
	{`{}`, nil, "NULL", "NULL", "NULL", "NULL", "NULL"},
	{`{"s":"a,b;c\td","d":1e3}`, str("a,b;c\td"), "NULL", "1000", "NULL", "NULL", "NULL"},
	{`{"s":"say \"hi\"","d":-1.50e-2}`, str(`say "hi"`), "NULL", "-0.0150", "NULL", "NULL", "NULL"},
	{`{"s":"line1\nline2\r\nline3\r","d":"12.50"}`, str("line1\nline2\r\nline3\r"), "NULL", "12.50", "NULL", "NULL", "NULL"},
	{`{"s":"  padded  ","d":123456789012345678901234567890.123456789}`, str("  padded  "), "NULL",
		"123456789012345678901234567890.123456789", "NULL", "NULL", "NULL"},
	{`{"s":"\\.","i":9223372036854775807}`, str(`\.`), "9223372036854775807", "NULL", "NULL", "NULL", "NULL"},
	{`{"s":"\\N","i":-9223372036854775808}`, str(`\N`), "-9223372036854775808", "NULL", "NULL", "NULL", "NULL"},
	{`{"s":"Grüße 東京 😀 \u00e9\ud83d\ude00 \ud800"}`, str("Grüße 東京 😀 é😀 \ufffd"), "NULL", "NULL", "NULL", "NULL", "NULL"},
	{`{"s":"\"","j":{"k":"<a href=\"x\">\u2028</a>","n":1.0e2}}`, str(`"`), "NULL", "NULL", "NULL", "NULL",
		`'{"k":"<a href=\"x\">` + "\u2028" + `</a>","n":1.0e2}'`},
	{`{"s":123456789012345678901234567890,"ts":"0001-01-01T00:00:00Z"}`, str("123456789012345678901234567890"),
		"NULL", "NULL", "NULL", "'0001-01-01 00:00:00'", "NULL"},
	{`{"s":{"z":[true,null],"a":"x"},"ts":"9999-12-31T23:59:59.999999999Z"}`, str(`{"z":[true,null],"a":"x"}`),
		"NULL", "NULL", "NULL", "'9999-12-31 23:59:59.999999'", "NULL"},
	{`{"s":"` + strings.Repeat(`x\"y,`, 250000) + `"}`, str(strings.Repeat(`x"y,`, 250000)), "NULL", "NULL", "NULL", "NULL", "NULL"},
}

var pgTable = TableSpec{Name: "v", Columns: []ColumnSpec{
	{Name: "id", Source: SourceOffset},
	{Name: "s", Path: "s"},
	{Name: "i", Path: "i", Type: TypeInt},
	{Name: "d", Path: "d", Type: TypeDecimal},
	{Name: "b", Path: "b", Type: TypeBool},
	{Name: "ts", Path: "ts", Type: TypeTimestamp},
	{Name: "j", Path: "j", Type: TypeJSON},
	{Name: "p", Source: SourcePartition},
}}

// TestPostgresCopy loads flatten's CSV into a real PostgreSQL with
// COPY … CSV HEADER and checks that every value arrives exactly: quoting,
// empty string versus NULL, \. and \N, CR/LF, unicode, a 1 MB string, and
// every type; with the default options and with delimiter ';' + null \N.
func TestPostgresCopy(t *testing.T) {
	c := pgtest.Start(t)
	for _, o := range []struct {
		name string
		csv  CSV
		copy string
	}{
		{"default", CSV{Header: true}, "FORMAT csv, HEADER true"},
		{"semicolon_null_N", CSV{Delimiter: ';', Null: `\N`, Header: true}, `FORMAT csv, HEADER true, DELIMITER ';', NULL '\N'`},
		{"tab", CSV{Delimiter: '\t', Header: true}, "FORMAT csv, HEADER true, DELIMITER E'\\t'"},
	} {
		t.Run(o.name, func(t *testing.T) {
			table := pgTable
			table.Name = "v_" + o.name
			loadTables(t, c, []TableSpec{table}, o.csv, o.copy, pgEvents())
			checkValues(t, c, table.Name)
		})
	}
}

// TestPostgresEndOfData: in a one-column table a value \. is a line of its
// own, PostgreSQL's end-of-data marker unless quoted; an empty string is a
// line "" and a missing value an empty line.
func TestPostgresEndOfData(t *testing.T) {
	c := pgtest.Start(t)
	table := TableSpec{Name: "one", Columns: []ColumnSpec{{Name: "s", Path: "s"}}}
	events := "{\"s\":\"a\"}\n{\"s\":\"\\\\.\"}\n{\"s\":\"\"}\n{}\n{\"s\":\"z\"}\n"
	loadTables(t, c, []TableSpec{table}, CSV{Header: true}, "FORMAT csv, HEADER true", []byte(events))
	got := c.MustExec(t, `SELECT string_agg(coalesce(s, '<null>'), '|' ORDER BY ctid) FROM one;`)
	if want := `a|\.||<null>|z` + "\n"; got != want {
		t.Errorf("rows = %q, want %q", got, want)
	}
}

func pgEvents() []byte {
	var b bytes.Buffer
	for _, pc := range pgCases {
		b.WriteString(pc.event + "\n")
	}
	return b.Bytes()
}

// loadTables creates the tables with DDL, writes each table's CSV with
// WriteNDJSON (offset = line number) and COPYs it in.
func loadTables(t *testing.T, c *pgtest.Cluster, tables []TableSpec, o CSV, copyOpts string, events []byte) *Mapping {
	t.Helper()
	ddl, err := DDL(DialectPostgres, "e_"+tables[0].Name, tables)
	if err != nil {
		t.Fatal(err)
	}
	c.MustExec(t, ddl)
	m, err := Compile(tables, o)
	if err != nil {
		t.Fatal(err)
	}
	for ti, ts := range tables {
		var out, stderr bytes.Buffer
		lin := func(line int) Lineage { return Lineage{Partition: "3", Offset: strconv.Itoa(line)} }
		if n, err := WriteNDJSON(bytes.NewReader(events), &out, &stderr, m, ti, lin); err != nil || n != 0 {
			t.Fatalf("WriteNDJSON: %d rejected, %v\n%s", n, err, stderr.String())
		}
		file := filepath.Join(t.TempDir(), ts.Name+".csv")
		if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.CopyCSV(t.Context(), pgtest.Ident(ts.Name), file, copyOpts); err != nil {
			t.Fatalf("COPY %s: %v", ts.Name, err)
		}
	}
	return m
}

func checkValues(t *testing.T, c *pgtest.Cluster, table string) {
	q := fmt.Sprintf(`SELECT id, coalesce(encode(convert_to(s, 'UTF8'), 'hex'), 'NULL') FROM %s ORDER BY id::int;`, pgtest.Ident(table))
	rows := strings.Split(strings.TrimSuffix(c.MustExec(t, q), "\n"), "\n")
	if len(rows) != len(pgCases) {
		t.Fatalf("%d rows in PostgreSQL, want %d", len(rows), len(pgCases))
	}
	for n, row := range rows {
		want := "NULL"
		if s := pgCases[n].s; s != nil {
			want = hex.EncodeToString([]byte(*s))
		}
		if got := row[strings.IndexByte(row, '|')+1:]; got != want {
			t.Errorf("event %d: s = %.80s, want %.80s", n+1, got, want)
		}
	}
	var checks []string
	quote := func(lit string) string {
		if lit == "NULL" || strings.HasPrefix(lit, "'") {
			return lit
		}
		return "'" + lit + "'"
	}
	for n, pc := range pgCases {
		cond := fmt.Sprintf("i IS NOT DISTINCT FROM %s::bigint AND d IS NOT DISTINCT FROM %s::numeric AND "+
			"b IS NOT DISTINCT FROM %s::boolean AND ts IS NOT DISTINCT FROM %s::timestamp AND j IS NOT DISTINCT FROM %s::jsonb",
			quote(pc.i), quote(pc.d), pc.b, pc.ts, pc.j)
		if pc.d != "NULL" {
			cond += fmt.Sprintf(" AND d::text = '%s'", pc.d)
		}
		checks = append(checks, fmt.Sprintf("SELECT %d WHERE NOT EXISTS (SELECT 1 FROM %s WHERE id = '%d' AND p = '3' AND %s);",
			n+1, pgtest.Ident(table), n+1, cond))
	}
	if bad := strings.TrimSpace(c.MustExec(t, strings.Join(checks, "\n"))); bad != "" {
		t.Errorf("events whose typed values differ in PostgreSQL: %s", strings.ReplaceAll(bad, "\n", ", "))
	}
}

// TestPostgresRealistic loads realistic mappings (GitHub payloads and the
// benchmark's article) with DDL-made tables, and the rejected rows of bad
// events, and compares row counts and a few values.
func TestPostgresRealistic(t *testing.T) {
	c := pgtest.Start(t)
	var events bytes.Buffer
	for _, name := range []string{"pull_request/opened.payload.json", "pull_request/opened.with-null-body.json",
		"push/with-new-branch.payload.json"} {
		data, err := os.ReadFile(filepath.Join("testdata/github-webhooks", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&events, data); err != nil {
			t.Fatal(err)
		}
		events.WriteString("\n")
	}
	tables := []TableSpec{
		{Name: "pr", Columns: []ColumnSpec{
			{Name: "pr_id", Path: "pull_request.id", Type: TypeInt},
			{Name: "title", Path: "pull_request.title"},
			{Name: "body", Path: "pull_request.body"},
			{Name: "created_at", Path: "pull_request.created_at", Type: TypeTimestamp},
			{Name: "head", Path: "pull_request.head", Type: TypeJSON},
			{Name: "offset", Source: SourceOffset},
		}},
		{Name: "pr_label", Columns: []ColumnSpec{
			{Name: "pr_id", Path: "pull_request.id", Type: TypeInt},
			{Name: "ix", Path: "pull_request.labels[*]", Source: SourceOrdinal},
			{Name: "name", Path: "pull_request.labels[*].name"},
			{Name: "default", Path: "pull_request.labels[*].default", Type: TypeBool},
		}},
		{Name: "push_file", Columns: []ColumnSpec{
			{Name: "commit", Path: "commits[*].id"},
			{Name: "file", Path: "commits[*].added[*]"},
		}},
		benchTable,
	}
	article, err := os.ReadFile("testdata/bench/article.json")
	if err != nil {
		t.Fatal(err)
	}
	events.Write(bytes.TrimSpace(article))
	events.WriteString("\n")
	loadTables(t, c, tables, CSV{Header: true}, "FORMAT csv, HEADER true", events.Bytes())
	got := c.MustExec(t, `SELECT (SELECT count(*) FROM pr WHERE pr_id IS NOT NULL), (SELECT count(body) FROM pr),
		(SELECT count(*) FROM pr_label), (SELECT count(*) FROM push_file), (SELECT count(*) FROM article_size),
		(SELECT head->'repo'->'owner'->>'login' FROM pr LIMIT 1), (SELECT string_agg(qty::text, ',' ORDER BY ix) FROM article_size),
		(SELECT max(occurred_at)::text FROM article_size), (SELECT max(price)::text FROM article_size);`)
	if want := "2|1|2|1|3|Codertocat|3,0,12|2024-05-01 10:34:56.789|129.95\n"; got != want {
		t.Errorf("loaded: %q, want %q", got, want)
	}

	// Rejected rows: the raw event arrives byte for byte (invalid UTF-8 as
	// U+FFFD), NULL partition when unknown.
	raw := []byte("{\"a\":\"x,\\\"y\"\r\n  \xff}\x00")
	rej := RejectedHeader(CSV{})
	rej = AppendRejectedRow(rej, CSV{}, "", "001-0001-000000000000000042", "invalid JSON: test", raw, 0)
	file := filepath.Join(t.TempDir(), "rejected.csv")
	if err := os.WriteFile(file, rej, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.CopyCSV(t.Context(), "e_pr_rejected", file, "FORMAT csv, HEADER true"); err != nil {
		t.Fatal(err)
	}
	got = c.MustExec(t, `SELECT coalesce(partition, 'NULL'), "offset", error, encode(convert_to(raw_event, 'UTF8'), 'hex') FROM e_pr_rejected;`)
	wantRaw := hex.EncodeToString([]byte("{\"a\":\"x,\\\"y\"\r\n  \ufffd}\ufffd"))
	if want := "NULL|001-0001-000000000000000042|invalid JSON: test|" + wantRaw + "\n"; got != want {
		t.Errorf("rejected row: %q, want %q", got, want)
	}
}
