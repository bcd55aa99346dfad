package demo

import (
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
	"time"
)

// postgres is the demo's throwaway PostgreSQL cluster for `demo -load`:
// initdb in a temporary directory, a server on a free port of 127.0.0.1,
// trust authentication; stop removes it. As root the server runs as the
// postgres OS user (initdb refuses root).
type postgres struct {
	bin   string
	dir   string
	port  int
	runAs []string
}

// errNoPostgres: initdb, pg_ctl are not installed.
var errNoPostgres = errors.New("PostgreSQL is not installed (initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin); apt-get install -y postgresql-15")

// startPostgres initializes and starts a cluster.
func startPostgres(ctx context.Context) (*postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	p := &postgres{bin: bin}
	if p.dir, err = os.MkdirTemp("", "materializer-demo-pg-"); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := p.handOver(); err != nil {
			p.stop()
			return nil, err
		}
	}
	if err := p.init(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *postgres) handOver() error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root and there is no postgres OS user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	p.runAs = []string{"runuser", "-u", "postgres", "--"}
	return os.Chown(p.dir, uid, gid)
}

func (p *postgres) init(ctx context.Context) error {
	data := filepath.Join(p.dir, "data")
	if out, err := p.tool(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories= -c fsync=off", p.port)
	if out, err := p.tool(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(p.dir, "server.log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	return nil
}

// DSN is the connection string of the cluster.
func (p *postgres) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", p.port)
}

// stop stops the server and removes the cluster.
func (p *postgres) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = p.tool(ctx, "pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop")
	os.RemoveAll(p.dir)
}

func (p *postgres) tool(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append(append(slices.Clone(p.runAs), filepath.Join(p.bin, name)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

// postgresBin finds the directory of initdb and pg_ctl: PATH, else the
// newest /usr/lib/postgresql/*/bin.
func postgresBin() (string, error) {
	has := func(dir string) bool {
		for _, t := range []string{"initdb", "pg_ctl"} {
			if _, err := os.Stat(filepath.Join(dir, t)); err != nil {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return v }
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", errNoPostgres
}
