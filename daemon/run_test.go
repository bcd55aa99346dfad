package main

import (
	"fmt"
	"materializer/internal/e2etest"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// assertUnlocked fails unless DATA_DIR/LOCK can be locked now.
func assertUnlocked(t *testing.T, dataDir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dataDir, "LOCK"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("data dir lock still held: %v", err)
	}
}

func TestRunStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	p := startRun(t, testConfig(t, dir, configOpts{DataDir: dataDir, DrainTimeout: "5s"}))
	base := p.adminURL()
	waitStatus(t, base+"/readyz", 200)

	fi, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o750 != 0 {
		t.Errorf("data dir mode %v, want at most 0750", perm)
	}
	start := time.Now()
	p.stopOK(5*time.Second+2*time.Second, "stop")
	t.Logf("stopped %v after SIGTERM", time.Since(start))
	p.waitLog("pipeline drained")
	p.waitLog("stopped")
	assertUnlocked(t, dataDir)
	if _, err := net.Dial("tcp", strings.TrimPrefix(base, "http://")); err == nil {
		t.Fatal("admin port still open after exit")
	}
}

func TestRunStopsOnSIGINT(t *testing.T) {
	dir := t.TempDir()
	p := startRun(t, testConfig(t, dir, configOpts{DataDir: dir}))
	p.waitLog("ready")
	p.signal(syscall.SIGINT)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	assertUnlocked(t, dir)
}

func TestSecondRunOnSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	first := startRun(t, testConfig(t, dir, configOpts{DataDir: dataDir}))
	base := first.adminURL()
	first.waitLog("ready")

	code, _, stderr := runBinary(t, "run", "-config", testConfig(t, t.TempDir(), configOpts{DataDir: dataDir}))
	want := fmt.Sprintf("materializer: run: data dir in use: %s is locked by pid %d; only one materializer may use a data dir",
		filepath.Join(dataDir, "LOCK"), first.cmd.Process.Pid)
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("second run: exit %d, want 1 and %q in:\n%s", code, want, stderr)
	}
	if got, _ := get(t, base+"/healthz"); got != 200 {
		t.Fatalf("first run unhealthy after the second was refused: %d", got)
	}
	first.stopOK(15*time.Second, "first run")
}

func TestRunRejectsBadConfigBeforeStarting(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	path := testConfig(t, dir, configOpts{DataDir: dataDir, DrainTimeout: "0s"})
	code, _, stderr := runBinary(t, "run", "-config", path)
	want := "materializer: " + path + ": 1 problem:\n  daemon.drain_timeout: \"0s\" must be > 0\n"
	if code != 2 || stderr != want {
		t.Fatalf("exit %d, stderr %q, want %q", code, stderr, want)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir created by a run with a bad config: %v", err)
	}
}

func TestRunFailsWhenAdminPortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	code, _, stderr := runBinary(t, "run", "-config", testConfig(t, dir, configOpts{DataDir: dir, AdminListen: ln.Addr().String()}))
	if code != 1 || !strings.Contains(stderr, "materializer: run: admin server: listen tcp "+ln.Addr().String()) ||
		!strings.Contains(stderr, "address already in use") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	assertUnlocked(t, dir)
}

func TestSIGHUPReloadsConfig(t *testing.T) {
	dir := t.TempDir()
	opts := configOpts{DataDir: filepath.Join(dir, "data"), NakadiURL: e2etest.ArticleEmulator(t, 2).URL()}
	path := testConfig(t, dir, opts)
	p := startRun(t, path)
	base := p.adminURL()
	p.waitLog("ready")

	opts.LogLevel, opts.DrainTimeout = "debug", "20s"
	testConfig(t, dir, opts)
	p.signal(syscall.SIGHUP)
	m := p.waitLog("configuration reloaded")
	if fmt.Sprint(m["applied"]) != "[daemon.log_level]" || m["log_level"] != "debug" {
		t.Errorf("reload applied %v, log_level %v", m["applied"], m["log_level"])
	}
	if m := p.waitLog("reload: these changes need a restart and are not applied yet"); fmt.Sprint(m["keys"]) != "[daemon.drain_timeout]" {
		t.Errorf("needs restart: %v", m["keys"])
	}

	if err := os.WriteFile(path, []byte("[daemon]\nlog_level = \"loud\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	m = p.waitLog("reload failed: keeping the running configuration")
	if probs := fmt.Sprint(m["problems"]); !strings.Contains(probs, `daemon.log_level: "loud" must be one of`) ||
		!strings.Contains(probs, "daemon.data_dir: is required") {
		t.Errorf("problems: %s", probs)
	}
	if got, _ := get(t, base+"/readyz"); got != 200 {
		t.Fatalf("not ready after a failed reload: %d", got)
	}
	p.stopOK(15*time.Second, "stop")
}

func TestAdminTokenNeverLeaks(t *testing.T) {
	dir := t.TempDir()
	const secret = "tok-9f8e7d6c5b4a"
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startRun(t, testConfig(t, dir, configOpts{DataDir: dir, TokenFile: tokenFile, LogLevel: "trace"}))
	base := p.adminURL()
	waitStatus(t, base+"/readyz", 200)

	for _, tc := range []struct {
		token string
		code  int
	}{{"", 401}, {"wrong", 401}, {secret, 200}} {
		if code, body := do(t, "POST", base+"/v1/flush", tc.token); code != tc.code || strings.Contains(body, secret) {
			t.Errorf("token %q: %d %q, want %d", tc.token, code, body, tc.code)
		}
	}
	if _, body := get(t, base+"/v1/status"); strings.Contains(body, secret) {
		t.Errorf("/v1/status shows the token: %s", body)
	}
	if _, body := get(t, base+"/metrics"); strings.Contains(body, secret) {
		t.Errorf("/metrics shows the token")
	}
	p.signal(syscall.SIGHUP)
	p.waitLog("configuration reloaded")
	p.signal(syscall.SIGTERM)
	p.wait(15 * time.Second)
	if strings.Contains(p.stderr(), secret) {
		t.Fatalf("the log shows the token:\n%s", p.stderr())
	}
}
