package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// VersityVersion is the versitygw release the Makefile installs.
const VersityVersion = "v1.8.0"

// Versity is a versitygw process serving a posix directory. Stop and
// Start simulate an outage: the restart keeps the port and the data.
type Versity struct {
	Server
	Dir  string // the posix root: one directory per bucket
	bin  string
	addr string
	t    testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *syncBuffer
}

// syncBuffer collects the child's output; exec copies into it from its
// own goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartVersity runs versitygw on a free loopback port with one bucket and
// stops it at test cleanup. Without the binary the test is skipped, or
// fails when CI=true.
func StartVersity(t testing.TB) *Versity {
	t.Helper()
	return StartVersityIn(t, t.TempDir())
}

// StartVersityIn is StartVersity serving dir (e.g. on tmpfs, to measure
// the client rather than the disk).
func StartVersityIn(t testing.TB, dir string) *Versity {
	t.Helper()
	bin := VersityBinary()
	if bin == "" {
		msg := "versitygw " + VersityVersion + " not found ($VERSITYGW or <repo>/.cache/bin/versitygw): run `make tools`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED — " + msg)
	}
	v := &Versity{Dir: dir, bin: bin, t: t}
	v.Server = Server{Bucket: "materializer-test", Creds: Creds{AccessKeyID: "versity-root", SecretAccessKey: "versity-secret-0123456789"}}
	t.Cleanup(v.Stop)
	var err error
	for range 5 { // the free port may be taken between probe and bind
		if v.addr, err = freeAddr(); err != nil {
			t.Fatal(err)
		}
		v.Endpoint = "http://" + v.addr
		if err = v.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("versitygw: %v\n%s", err, v.output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.createBucket(ctx); err != nil {
		t.Fatalf("versitygw: create bucket: %v\n%s", err, v.output())
	}
	return v
}

// VersityBinary finds versitygw: $VERSITYGW if set (the Makefile exports
// it), else <repo root>/.cache/bin/versitygw; "" when the file is missing.
func VersityBinary() string {
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	dir, err := os.Getwd()
	for err == nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			p := filepath.Join(dir, ".cache", "bin", "versitygw")
			if _, serr := os.Stat(p); serr == nil {
				return p
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ""
}

// Start restarts a stopped server on the same port and directory.
func (v *Versity) Start() {
	v.t.Helper()
	if err := v.start(); err != nil {
		v.t.Fatalf("versitygw restart: %v\n%s", err, v.output())
	}
}

// PID of the running server process (0 when stopped).
func (v *Versity) PID() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd == nil {
		return 0
	}
	return v.cmd.Process.Pid
}

// Stop kills the server and waits for it to exit.
func (v *Versity) Stop() {
	v.mu.Lock()
	cmd, done := v.cmd, v.done
	v.cmd = nil
	v.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

func (v *Versity) start() error {
	v.mu.Lock()
	if v.cmd != nil {
		v.mu.Unlock()
		return fmt.Errorf("already running")
	}
	cmd := exec.Command(v.bin, "--port", v.addr, "--quiet", "posix", v.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+v.Creds.AccessKeyID, "ROOT_SECRET_KEY="+v.Creds.SecretAccessKey)
	v.logs = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = v.logs, v.logs
	if err := cmd.Start(); err != nil {
		v.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	v.cmd, v.done = cmd, done
	v.mu.Unlock()
	if err := waitReady(v.Endpoint, done); err != nil {
		v.Stop()
		return err
	}
	return nil
}

// waitReady polls until the server answers HTTP (any status).
func waitReady(endpoint string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready")
		default:
		}
		if resp, err := client.Get(endpoint + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready after 15s")
}

func (v *Versity) output() string {
	v.mu.Lock()
	logs := v.logs
	v.mu.Unlock()
	if logs == nil {
		return ""
	}
	return strings.TrimSpace(logs.String())
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
