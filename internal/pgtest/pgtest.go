// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb in
// a test's temporary directory, a server on a free port of 127.0.0.1, psql
// to run SQL and \copy files, and a stop when the test ends.
//
// The binaries are found in $PGTEST_BIN, else on PATH or in
// /usr/lib/postgresql/*/bin (the newest). When they are missing the test is skipped with a message naming
// the install command — unless the environment has CI=true, where a missing
// PostgreSQL fails the test. initdb refuses to run as root, so as root the
// server runs as the postgres OS user (runuser).
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// InstallHint is how to get PostgreSQL on the team's machines (Debian 12).
const InstallHint = "apt-get install -y postgresql-15"

// Cluster is a running throwaway server. Superuser postgres, database
// postgres, trust authentication, no TLS, fsync off.
type Cluster struct {
	Port int
	Dir  string // the data directory

	bin    string // directory of initdb, pg_ctl, psql
	runAs  []string
	logDir string
}

// Start initializes and starts a cluster, stopped in t.Cleanup. It skips (or
// fails, with CI=true) the test when PostgreSQL is not installed.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		missing(t, err)
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		c.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	root := c.tempDir(t)
	c.Dir, c.logDir = filepath.Join(root, "data"), root
	if out, err := c.server(t.Context(), "initdb", "-D", c.Dir, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and start
		if lastErr = c.start(t); lastErr == nil {
			t.Cleanup(c.stop)
			return c
		}
	}
	t.Fatalf("pgtest: start: %v", lastErr)
	return nil
}

func missing(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("pgtest: PostgreSQL is not installed (%v).\n"+
		"    ***** INSTALL IT: %s *****", err, InstallHint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
		return
	}
	t.Skip(msg + " — skipping this test")
}

// findBin returns the directory holding initdb, pg_ctl and psql: $PGTEST_BIN
// when set, else from PATH or /usr/lib/postgresql/*/bin.
func findBin() (string, error) {
	if dir := os.Getenv("PGTEST_BIN"); dir != "" {
		if hasTools(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("PGTEST_BIN=%s lacks initdb, pg_ctl or psql", dir)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		// Follow symlinks to the installation's own bin directory, which
		// holds all three tools (PATH may link only some of them).
		if real, err := filepath.EvalSymlinks(p); err == nil && hasTools(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if hasTools(dir) {
			return dir, nil
		}
	}
	return "", errors.New("no initdb, pg_ctl and psql on PATH or in /usr/lib/postgresql/*/bin")
}

func hasTools(dir string) bool {
	for _, tool := range []string{"initdb", "pg_ctl", "psql"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			return false
		}
	}
	return true
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// tempDir returns a directory the server's OS user can write: t.TempDir,
// handed over to postgres (and its parent made traversable) when root.
func (c *Cluster) tempDir(t testing.TB) string {
	dir := t.TempDir()
	if c.runAs == nil {
		return dir
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		missing(t, fmt.Errorf("running as root and there is no postgres OS user: %w", err))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	for p := filepath.Dir(dir); p != os.TempDir() && p != "/" && p != "."; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (c *Cluster) start(t testing.TB) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.Port = port
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\n"+
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n", port)
	if err := appendFile(filepath.Join(c.Dir, "postgresql.conf"), conf); err != nil {
		return err
	}
	out, err := c.server(t.Context(), "pg_ctl", "-D", c.Dir, "-l", filepath.Join(c.logDir, "server.log"),
		"-w", "-t", "60", "start")
	if err != nil {
		logs, _ := os.ReadFile(filepath.Join(c.logDir, "server.log"))
		return fmt.Errorf("pg_ctl start on port %d: %w\n%s\n%s", port, err, out, logs)
	}
	return nil
}

func (c *Cluster) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = c.server(ctx, "pg_ctl", "-D", c.Dir, "-m", "immediate", "-w", "stop")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(name, text string) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// server runs a server-side tool (initdb, pg_ctl) as the server's OS user.
func (c *Cluster) server(ctx context.Context, tool string, args ...string) ([]byte, error) {
	argv := append(append(slices.Clone(c.runAs), filepath.Join(c.bin, tool)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

// ConnString is a libpq connection string for the cluster.
func (c *Cluster) ConnString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", c.Port)
}

// Exec runs SQL (one or more statements, psql meta-commands included) with
// psql and returns its unaligned, tuples-only output (fields separated by
// '|'). The first error stops it; the error holds psql's message.
func (c *Cluster) Exec(ctx context.Context, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "psql"), "-X", "-q", "-A", "-t",
		"-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres", "-d", "postgres")
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("psql: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// MustExec is Exec that fails the test on error.
func (c *Cluster) MustExec(t testing.TB, sql string) string {
	t.Helper()
	out, err := c.Exec(t.Context(), sql)
	if err != nil {
		t.Fatalf("pgtest: %v\nSQL:\n%s", err, sql)
	}
	return out
}

// CopyCSV loads a CSV file into table with psql's \copy (the file is read
// by psql, not by the server). options is the WITH list, e.g.
// "FORMAT csv, HEADER true, NULL ”".
func (c *Cluster) CopyCSV(ctx context.Context, table, file, options string) error {
	_, err := c.Exec(ctx, fmt.Sprintf("\\copy %s FROM %s WITH (%s)\n", table, Literal(file), options))
	return err
}

// Literal quotes s as an SQL string literal.
func Literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Ident quotes s as an SQL identifier.
func Ident(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
