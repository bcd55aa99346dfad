package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"materializer/internal/articles"
)

// LoadedArticleTOML is ArticleTypeTOML as `materializer load` needs it (a
// version column in the child table too), with sessions of seconds so that
// files flow while a test runs: the config of the loader tests.
var LoadedArticleTOML = strings.NewReplacer(
	`session_gap   = "1h"`, `session_gap   = "1s"`,
	`session_max   = "2h"`, `session_max   = "3s"`,
	qtyColumn, qtyColumn+`    { name = "version",    path = "version",      type = "int" },
`).Replace(ArticleTypeTOML)

const qtyColumn = `    { name = "qty",        path = "sizes[*].qty", type = "int" },
`

// The queries that read back what the loader made, each row as text in
// the form the model computes.
const (
	articleQuery = `SELECT article_id::text, brand, version::text, price::text,
		to_char(occurred_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM %s.article`
	sizeQuery = `SELECT article_id::text, size, qty::text, version::text FROM %s.article_size`
)

// LoadedModel is what the loader must leave in PostgreSQL for a set of
// generated events, computed from the events alone: per article the rows
// of its newest valid version (the highest "new" version: duplicates,
// out-of-order and conflicting events never win), and the eids of the
// malformed events.
type LoadedModel struct {
	Articles [][]string // article_id, brand, version, price, occurred_at
	Sizes    [][]string // article_id, size, qty, version
	Rejected []string   // eids
}

// ExpectLoaded computes the model.
func ExpectLoaded(t testing.TB, events []articles.Event) LoadedModel {
	t.Helper()
	newest := map[int]articles.Event{}
	var m LoadedModel
	for _, a := range events {
		switch a.Kind {
		case "new":
			if cur, ok := newest[a.Article]; !ok || a.Version > cur.Version {
				newest[a.Article] = a
			}
		case "malformed":
			m.Rejected = append(m.Rejected, a.EID)
		}
	}
	for _, a := range newest {
		art, sizes := rowsOf(t, a)
		m.Articles = append(m.Articles, art)
		m.Sizes = append(m.Sizes, sizes...)
	}
	sortRows(m.Articles)
	sortRows(m.Sizes)
	slices.Sort(m.Rejected)
	return m
}

// rowsOf flattens one generated event as the mapping above does.
func rowsOf(t testing.TB, a articles.Event) ([]string, [][]string) {
	var ev struct {
		Metadata struct {
			OccurredAt string `json:"occurred_at"`
		} `json:"metadata"`
		Brand string `json:"brand"`
		Price struct {
			Amount string `json:"amount"`
		} `json:"price"`
		Sizes []struct {
			Size string `json:"size"`
			Qty  int    `json:"qty"`
		} `json:"sizes"`
	}
	if err := json.Unmarshal(a.Raw, &ev); err != nil {
		t.Fatalf("event %s: %v", a.EID, err)
	}
	at, err := time.Parse(time.RFC3339Nano, ev.Metadata.OccurredAt)
	if err != nil {
		t.Fatalf("event %s: %v", a.EID, err)
	}
	id, v := strconv.Itoa(a.Article), strconv.Itoa(a.Version)
	art := []string{id, ev.Brand, v, ev.Price.Amount, at.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z")}
	var sizes [][]string
	for _, s := range ev.Sizes {
		sizes = append(sizes, []string{id, s.Size, strconv.Itoa(s.Qty), v})
	}
	return art, sizes
}

func sortRows(rows [][]string) {
	slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(strings.Join(a, "\x00"), strings.Join(b, "\x00")) })
}

// CheckLoaded compares the loader's tables in schema with the model and
// with the delivered files: the current-state tables hold exactly the
// newest version of every article (every column) and its child rows; the
// rejected table holds every malformed event once; the history holds
// every row of every delivered main and correction file exactly once,
// tagged with its file's notice; materializer_loaded_files names every
// delivered file once and nothing else.
func CheckLoaded(t testing.TB, dsn, schema string, m LoadedModel, files []File) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	sameRows(t, "article", queryRows(t, db, fmt.Sprintf(articleQuery, schema)), m.Articles)
	sameRows(t, "article_size", queryRows(t, db, fmt.Sprintf(sizeQuery, schema)), m.Sizes)
	var rejected [][]string
	for _, r := range queryRows(t, db, "SELECT raw_event FROM "+schema+".article_updated_rejected") {
		rejected = append(rejected, []string{RawEID(r[0])})
	}
	var want [][]string
	for _, eid := range m.Rejected {
		want = append(want, []string{eid})
	}
	sameRows(t, "article_updated_rejected (eids)", rejected, want)
	checkHistory(t, db, schema, files)
}

// checkHistory: per delivered file, the history rows tagged with its id are
// the file's rows, once; every file is recorded as loaded once.
func checkHistory(t testing.TB, db *pgx.Conn, schema string, files []File) {
	t.Helper()
	got := map[string]int{}
	for _, table := range []string{"article", "article_size"} {
		for _, r := range queryRows(t, db, "SELECT materializer_notice_id, count(*)::text FROM "+schema+"."+table+"_history GROUP BY 1") {
			n, _ := strconv.Atoi(r[1])
			got[r[0]] += n
		}
	}
	loaded := map[string]bool{}
	for _, r := range queryRows(t, db, "SELECT id FROM "+schema+".materializer_loaded_files") {
		loaded[r[0]] = true
	}
	for _, f := range files {
		if !loaded[f.Key] {
			t.Errorf("delivered file %s is not in materializer_loaded_files", f.Key)
		}
		delete(loaded, f.Key)
		if f.Kind == "rejected" {
			continue
		}
		if got[f.Key] != len(f.Rows) {
			t.Errorf("history holds %d rows of %s, the file has %d", got[f.Key], f.Key, len(f.Rows))
		}
		delete(got, f.Key)
	}
	for id, n := range got {
		t.Errorf("history holds %d rows of %s, which was not delivered", n, id)
	}
	for id := range loaded {
		t.Errorf("materializer_loaded_files names %s, which was not delivered", id)
	}
}

func queryRows(t testing.TB, db *pgx.Conn, q string) [][]string {
	t.Helper()
	rows, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		vals, err := r.Values()
		row := make([]string, len(vals))
		for i, v := range vals {
			if v != nil {
				row[i] = fmt.Sprint(v)
			}
		}
		return row, err
	})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	sortRows(out)
	return out
}

// sameRows compares two sorted row sets, reporting a few differences.
func sameRows(t testing.TB, what string, got, want [][]string) {
	t.Helper()
	g, w := map[string]int{}, map[string]int{}
	for _, r := range got {
		g[strings.Join(r, " | ")]++
	}
	for _, r := range want {
		w[strings.Join(r, " | ")]++
	}
	bad := 0
	for k, n := range w {
		if g[k] != n && bad < 5 {
			t.Errorf("%s: row %q: %d in PostgreSQL, want %d", what, k, g[k], n)
			bad++
		}
	}
	for k, n := range g {
		if w[k] == 0 && bad < 10 {
			t.Errorf("%s: row %q: %d in PostgreSQL, want none", what, k, n)
			bad++
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d rows in PostgreSQL, want %d", what, len(got), len(want))
	}
}
