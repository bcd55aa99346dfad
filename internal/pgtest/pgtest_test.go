package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCluster(t *testing.T) {
	c := Start(t)
	if got := strings.TrimSpace(c.MustExec(t, "SELECT 1 + 1;")); got != "2" {
		t.Fatalf("SELECT 1 + 1 = %q", got)
	}
	if got := strings.TrimSpace(c.MustExec(t, "SHOW server_encoding;")); got != "UTF8" {
		t.Errorf("server_encoding = %q", got)
	}
	file := filepath.Join(t.TempDir(), "it's.csv")
	if err := os.WriteFile(file, []byte("id,s\n1,\"a,b\"\n2,\n3,\"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.MustExec(t, `CREATE TABLE "t" (id int, s text);`)
	if err := c.CopyCSV(t.Context(), Ident("t"), file, "FORMAT csv, HEADER true"); err != nil {
		t.Fatal(err)
	}
	got := c.MustExec(t, `SELECT id, coalesce(s, '<null>') FROM t ORDER BY id;`)
	if want := "1|a,b\n2|<null>\n3|\n"; got != want {
		t.Errorf("rows = %q, want %q", got, want)
	}
	if _, err := c.Exec(t.Context(), "SELECT nope;"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a failing statement gives %v", err)
	}
}

func TestLiteralIdent(t *testing.T) {
	if Literal("it's") != "'it''s'" || Ident(`a"b`) != `"a""b"` {
		t.Error(Literal("it's"), Ident(`a"b`))
	}
}

// fakeTB records Skip and Fatal instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

// Without PostgreSQL a test is skipped loudly, naming the install command;
// with CI=true it fails instead.
func TestMissing(t *testing.T) {
	t.Setenv("PGTEST_BIN", t.TempDir())
	_, err := findBin()
	if err == nil {
		t.Fatal("an empty PGTEST_BIN is accepted")
	}
	t.Setenv("CI", "")
	f := &fakeTB{TB: t}
	missing(f, err)
	if !strings.Contains(f.skipped, InstallHint) || f.fatal != "" {
		t.Errorf("without CI: skipped %q, fatal %q", f.skipped, f.fatal)
	}
	t.Setenv("CI", "true")
	f = &fakeTB{TB: t}
	missing(f, err)
	if !strings.Contains(f.fatal, InstallHint) || f.skipped != "" {
		t.Errorf("with CI=true: skipped %q, fatal %q", f.skipped, f.fatal)
	}
}
