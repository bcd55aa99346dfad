package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"materializer/internal/pgtest"
)

func TestDDLDialects(t *testing.T) {
	cases := []struct {
		dialect string
		want    []string
	}{
		{"postgres", []string{`CREATE TABLE "article" (`, `"price" NUMERIC`, `CREATE TABLE "article_correction" (`,
			`CREATE TABLE "article_size_correction" (`, `CREATE TABLE "article_updated_rejected" (`, `"raw_event" TEXT`}},
		{"redshift", []string{`CREATE TABLE "article" (`, `"price" DECIMAL(38,18)`, `CREATE TABLE "article_correction" (`,
			`CREATE TABLE "article_updated_rejected" (`, `"raw_event" VARCHAR(65535)`}},
		{"oracle", []string{`CREATE TABLE "ARTICLE" (`, `"PRICE" NUMBER`, `CREATE TABLE "ARTICLE_SIZE_CORRECTION" (`,
			`CREATE TABLE "ARTICLE_UPDATED_REJECTED" (`, `"RAW_EVENT" CLOB`}},
	}
	for _, tc := range cases {
		code, stdout, stderr := runBinary(t, "ddl", "-config", "../conf/demo.toml", "-dialect", tc.dialect)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "-- event type article.updated\n") {
			t.Errorf("%s: exit %d, stderr %q, stdout:\n%s", tc.dialect, code, stderr, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s: no %q in:\n%s", tc.dialect, w, stdout)
			}
		}
		if n := strings.Count(stdout, "CREATE TABLE"); n != 5 {
			t.Errorf("%s: %d CREATE TABLE statements, want 5 (2 tables × main and correction, rejected)", tc.dialect, n)
		}
	}
}

func TestDDLDefaultIsPostgres(t *testing.T) {
	_, def, _ := runBinary(t, "ddl", "-config", "../conf/demo.toml")
	_, pg, _ := runBinary(t, "ddl", "-config", "../conf/demo.toml", "-dialect", "postgres")
	if def != pg || def == "" {
		t.Fatalf("default output differs from -dialect postgres:\n%s\nvs\n%s", def, pg)
	}
}

func TestDDLUsageErrors(t *testing.T) {
	code, stdout, stderr := runBinary(t, "ddl", "-config", "../conf/demo.toml", "-dialect", "mysql")
	if code != 2 || stdout != "" || stderr != "materializer ddl: unknown -dialect \"mysql\": want postgres, redshift or oracle\n" {
		t.Errorf("-dialect mysql: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runBinary(t, "ddl", "-config", "missing.toml")
	if code != 2 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing config: exit %d, stderr %q", code, stderr)
	}
}

// The postgres DDL runs in a real PostgreSQL, and what `flatten` prints
// for each table loads into it with COPY … CSV HEADER.
func TestDDLLoadsIntoPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	code, ddl, stderr := runBinary(t, "ddl", "-config", "../conf/demo.toml")
	if code != 0 {
		t.Fatalf("ddl: exit %d: %s", code, stderr)
	}
	pg.MustExec(t, ddl)
	dir := t.TempDir()
	for _, table := range []string{"article", "article_size"} {
		code, csv, stderr := runBinaryIn(t, flattenInput, "flatten", "-config", "../conf/demo.toml",
			"-event-type", "article.updated", "-table", table)
		if code != 1 { // flattenInput holds rejected events
			t.Fatalf("flatten %s: exit %d: %s", table, code, stderr)
		}
		file := filepath.Join(dir, table+".csv")
		if err := os.WriteFile(file, []byte(csv), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{table, table + "_correction"} {
			if err := pg.CopyCSV(t.Context(), pgtest.Ident(target), file, "FORMAT csv, HEADER true"); err != nil {
				t.Fatalf("COPY into %s: %v", target, err)
			}
		}
	}
	got := pg.MustExec(t, `SELECT article_id, brand, version, price, occurred_at FROM article ORDER BY article_id;
SELECT count(*) FROM article_size_correction WHERE article_id = 7;
SELECT count(*) FROM article_updated_rejected;`)
	want := "7|comma, inc|3|15|2024-05-01 08:00:00.5\n8|new\nline|1||\n2\n0\n"
	if got != want {
		t.Fatalf("PostgreSQL holds:\n%q\nwant:\n%q", got, want)
	}
}
