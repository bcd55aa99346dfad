package load_test

import (
	"fmt"
	"testing"

	"materializer/pipeline/load"
	"materializer/pipeline/notify"
)

func art(id, brand string, v, price string) []string { return []string{id, brand, v, price, ""} }
func size(id, s, qty, v string) []string             { return []string{id, s, qty, v} }

// mergeCase is one key's files, in the order they are announced, and the
// rows its tables must end with.
type mergeCase struct {
	name    string
	files   []fileSpec
	article string // "brand|version", "" = no row
	sizes   string // "size:qty,...", "" = no rows
}

var mergeCases = []mergeCase{
	{"older main after newer", []fileSpec{
		{table: "article", kind: "main", rows: [][]string{art("1", "new", "3", "1.00")}},
		{table: "article_size", kind: "main", rows: [][]string{size("1", "40", "1", "3")}},
		{table: "article", kind: "main", rows: [][]string{art("1", "old", "2", "2.00")}},
		{table: "article_size", kind: "main", rows: [][]string{size("1", "38", "5", "2"), size("1", "39", "6", "2")}},
	}, "new|3", "40:1"},
	{"correction after newer main rows", []fileSpec{
		{table: "article", kind: "main", rows: [][]string{art("2", "main", "5", "1.00")}},
		{table: "article_size", kind: "main", rows: [][]string{size("2", "40", "1", "5")}},
		{table: "article", kind: "correction", rows: [][]string{art("2", "late", "1", "9.00")}},
		{table: "article_size", kind: "correction", rows: [][]string{size("2", "41", "9", "1")}},
	}, "main|5", "40:1"},
	{"main beats an equal correction loaded first", []fileSpec{
		{table: "article", kind: "correction", rows: [][]string{art("3", "conflict", "4", "1.00")}},
		{table: "article_size", kind: "correction", rows: [][]string{size("3", "41", "1", "4"), size("3", "42", "2", "4")}},
		{table: "article", kind: "main", rows: [][]string{art("3", "main", "4", "2.00")}},
		{table: "article_size", kind: "main", rows: [][]string{size("3", "40", "7", "4")}},
	}, "main|4", "40:7"},
	{"an equal correction never replaces main", []fileSpec{
		{table: "article", kind: "main", rows: [][]string{art("4", "main", "4", "2.00")}},
		{table: "article", kind: "correction", rows: [][]string{art("4", "conflict", "4", "1.00")}},
		{table: "article_size", kind: "correction", rows: [][]string{size("4", "41", "1", "4")}},
	}, "main|4", ""},
	{"a newer version without child rows empties them", []fileSpec{
		{table: "article", kind: "main", rows: [][]string{art("5", "a", "6", "1.00")}},
		{table: "article_size", kind: "main", rows: [][]string{size("5", "40", "1", "6"), size("5", "41", "2", "6")}},
		{table: "article", kind: "main", rows: [][]string{art("5", "b", "7", "1.00")}},
	}, "b|7", ""},
	{"child rows before their parent row", []fileSpec{
		{table: "article_size", kind: "main", rows: [][]string{size("6", "40", "3", "8"), size("6", "41", "4", "8")}},
		{table: "article", kind: "main", rows: [][]string{art("6", "a", "8", "1.00")}},
	}, "a|8", "40:3,41:4"},
	{"between equal main versions what is loaded stays", []fileSpec{
		{table: "article", kind: "main", writer: "wA", rows: [][]string{art("7", "first", "9", "1.00")}},
		{table: "article", kind: "main", writer: "wB", rows: [][]string{art("7", "second", "9", "2.00")}},
		{table: "article_size", kind: "main", writer: "wB", rows: [][]string{size("7", "44", "4", "9")}},
		{table: "article_size", kind: "main", writer: "wA", rows: [][]string{size("7", "40", "1", "9")}},
	}, "first|9", "40:1"},
	{"older child rows after the parent's newer version", []fileSpec{
		{table: "article", kind: "main", rows: [][]string{art("8", "a", "2", "1.00")}},
		{table: "article_size", kind: "main", rows: [][]string{size("8", "40", "1", "1")}},
	}, "a|2", ""},
	{"two sessions of a key in one file", []fileSpec{
		{table: "article", kind: "main", rows: [][]string{art("9", "a", "1", "1.00"), art("9", "b", "3", "1.00")}},
		{table: "article_size", kind: "main", rows: [][]string{size("9", "40", "1", "1"), size("9", "41", "2", "3"), size("9", "42", "3", "3")}},
	}, "b|3", "41:2,42:3"},
	{"large numbers compare as numbers", []fileSpec{
		{table: "article", kind: "main", rows: [][]string{art("10", "ten", "10", "1.00")}},
		{table: "article", kind: "main", rows: [][]string{art("10", "nine", "9", "1.00")}},
	}, "ten|10", ""},
}

// TestMergeRules: the current-state rules of docs/loader.md, for files
// announced out of order, corrections after newer main rows, ties, child
// tables; through file:// and S3, one file per transaction and batches of
// files. Every file is also in the history, rejected rows land in their
// table, a repeated notice is loaded once.
func TestMergeRules(t *testing.T) {
	for _, s3 := range []bool{false, true} {
		t.Run(fmt.Sprintf("s3=%v", s3), func(t *testing.T) {
			r := newRig(t, s3, "history = true\nbatch_files = 1")
			var ns []notify.Notice
			rows := 0
			for _, c := range mergeCases {
				for _, f := range c.files {
					ns = append(ns, r.put(f))
					rows += len(f.rows)
				}
			}
			ns = append(ns, r.put(fileSpec{table: "_rejected", kind: "rejected", rows: [][]string{{"0", "001-0001-000000000000000007", "bad version", `{"version":"x"}`}}}))
			r.publish(ns...)
			r.publish(ns[0]) // again: recorded, acked without loading
			for _, batch := range []int{1, 16} {
				schema := fmt.Sprintf("ods_b%d", batch)
				r.cfg.Load.Schema, r.cfg.Load.Durable, r.cfg.Load.BatchFiles = schema, "dwh-"+schema, batch
				l, stop := r.start(nil)
				r.waitLoaded(schema, len(ns))
				r.waitFor("the repeated notice acked", func() bool { return l.Status().FilesSkipped >= 1 && l.Status().NoticesPending == 0 })
				stop()
				checkMerge(t, r, schema, rows)
			}
		})
	}
}

func checkMerge(t *testing.T, r *rig, schema string, rows int) {
	t.Helper()
	for i, c := range mergeCases {
		id := i + 1
		got := r.sql(fmt.Sprintf("SELECT brand || '|' || version FROM %s.article WHERE article_id = %d", schema, id))
		sizes := r.sql(fmt.Sprintf("SELECT coalesce(string_agg(size || ':' || qty, ',' ORDER BY size), '') FROM %s.article_size WHERE article_id = %d", schema, id))
		if got != c.article || sizes != c.sizes {
			t.Errorf("%s: %s: article %q sizes %q, want %q and %q", schema, c.name, got, sizes, c.article, c.sizes)
		}
	}
	if n := r.sql(fmt.Sprintf("SELECT (SELECT count(*) FROM %[1]s.article_history) + (SELECT count(*) FROM %[1]s.article_size_history)", schema)); n != fmt.Sprint(rows) {
		t.Errorf("%s: %s history rows, want %d (every main and correction row once)", schema, n, rows)
	}
	if got := r.sql("SELECT error FROM " + schema + ".article_updated_rejected"); got != "bad version" {
		t.Errorf("%s: rejected rows %q", schema, got)
	}
	if got := r.sql("SELECT materializer_kind FROM " + schema + ".article_history WHERE article_id = 2 AND version = 1"); got != "correction" {
		t.Errorf("%s: history of the correction: kind %q", schema, got)
	}
}

// Tables that exist with other columns are refused at start, named.
func TestTablesDiffer(t *testing.T) {
	r := newRig(t, false, "")
	r.sql("CREATE SCHEMA ods; CREATE TABLE ods.article (article_id bigint, brand text)")
	l, err := load.New(load.Options{Config: r.cfg, DSN: r.dsn, Store: r.store})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Run(t.Context())
	if err == nil || !errorsIs(err, load.ErrTablesDiffer) || !contains(err.Error(), "ods.article has (article_id bigint, brand text), the configuration wants (article_id bigint, brand text, version bigint, price numeric, occurred_at timestamp(6) without time zone)") {
		t.Fatalf("Run: %v", err)
	}
}

// With ordering = "arrival" the later file per partition wins: versions
// compare by the offset column, whatever order the files are announced in.
func TestMergeArrival(t *testing.T) {
	r := newRig(t, false, "")
	off := func(n int) string { return fmt.Sprintf("001-0001-%018d", n) }
	r.publish(
		r.put(fileSpec{et: "order.created", table: "order", kind: "main", rows: [][]string{{"A1", "paid", off(120)}, {"A2", "new", off(7)}}}),
		r.put(fileSpec{et: "order.created", table: "order", kind: "main", rows: [][]string{{"A1", "new", off(99)}, {"A2", "paid", off(1000)}}}),
	)
	r.start(nil)
	r.waitLoaded("ods", 2)
	if got := r.sql(`SELECT string_agg(order_number || '=' || status, ',' ORDER BY order_number) FROM ods."order"`); got != "A1=paid,A2=paid" {
		t.Errorf("orders %q, want the rows of the highest offsets", got)
	}
}
