// Package systemd holds the unit files of materializer (the daemon and the
// loader) and their tests; it has no Go code of its own.
package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"materializer/conf"
)

const (
	unitFile     = "materializer.service"
	loadUnitFile = "materializer-load.service"
)

var unitFiles = []string{unitFile, loadUnitFile}

// directives parses a unit: "Section.Key" -> values in order.
func directives(t *testing.T, file string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("not a directive: %q", line)
			}
			m[section+"."+k] = append(m[section+"."+k], v)
		}
	}
	return m
}

// common are the directives both units have: notify with a watchdog,
// reload by SIGHUP, restart on failure but not on a bad config, hardening.
var common = map[string]string{
	"Service.Type":                     "notify",
	"Service.ExecReload":               "/bin/kill -HUP $MAINPID",
	"Service.Restart":                  "on-failure",
	"Service.NoNewPrivileges":          "yes",
	"Service.ProtectSystem":            "strict",
	"Service.PrivateTmp":               "yes",
	"Service.ProtectHome":              "yes",
	"Service.User":                     "materializer",
	"Service.RestartPreventExitStatus": "2",
	"Service.MemoryDenyWriteExecute":   "yes",
	"Service.CapabilityBoundingSet":    "",
}

func TestUnitDirectives(t *testing.T) {
	checkDirectives(t, unitFile, map[string]string{
		"Service.ExecStart":      "/usr/local/bin/materializer run -config /etc/materializer/materializer.toml",
		"Service.StateDirectory": "materializer",
		"Service.ReadWritePaths": "/var/lib/materializer",
	})
}

// The loader's unit runs `materializer load` with the same hardening; it
// has no state directory (the loader keeps nothing on local disk).
func TestLoadUnitDirectives(t *testing.T) {
	checkDirectives(t, loadUnitFile, map[string]string{
		"Service.ExecStart": "/usr/local/bin/materializer load -config /etc/materializer/materializer.toml",
	})
	if d := directives(t, loadUnitFile); d["Service.StateDirectory"] != nil || d["Service.ReadWritePaths"] != nil {
		t.Errorf("the loader's unit writes local state: %v %v", d["Service.StateDirectory"], d["Service.ReadWritePaths"])
	}
}

func checkDirectives(t *testing.T, file string, own map[string]string) {
	t.Helper()
	d := directives(t, file)
	for _, want := range []map[string]string{common, own} {
		for k, v := range want {
			if got := d[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s = %q, want %q", file, k, got, v)
			}
		}
	}
	if len(d["Service.WatchdogSec"]) != 1 {
		t.Errorf("%s: WatchdogSec missing", file)
	}
}

// TestStopTimeoutExceedsDrain: systemd must not SIGKILL a daemon that is
// still inside its drain budget, nor one that ran out of it and is saying
// what stays (the admin server's shutdown takes up to 5 s after it).
func TestStopTimeoutExceedsDrain(t *testing.T) {
	for _, file := range unitFiles {
		d := directives(t, file)
		stop, err := time.ParseDuration(strings.TrimSpace(d["Service.TimeoutStopSec"][0]))
		if err != nil {
			t.Fatalf("%s: TimeoutStopSec: %v", file, err)
		}
		drain := conf.Default().Daemon.DrainTimeout.Duration()
		if stop < drain+15*time.Second {
			t.Fatalf("%s: TimeoutStopSec %v must exceed the default daemon.drain_timeout %v by 15s at least", file, stop, drain)
		}
	}
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on the unit and
// fails on any output on stderr (the tool only warns about unknown keys).
// verify also insists that ExecStart's binary exists, so the copy it checks
// names an existing executable instead of /usr/local/bin/materializer;
// TestUnitDirectives checks the real ExecStart line.
func TestSystemdAnalyzeVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit files are not verified")
	}
	for _, file := range unitFiles {
		t.Run(file, func(t *testing.T) { verify(t, tool, file) })
	}
}

func verify(t *testing.T, tool, file string) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), file)
	text := strings.ReplaceAll(string(data), "/usr/local/bin/materializer", self)
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tool, "verify", unit)
	cmd.Stderr = &stderr
	err = cmd.Run()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
}

// TestVerifyCatchesUnknownKeys shows the check above can fail.
func TestVerifyCatchesUnknownKeys(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unit := filepath.Join(t.TempDir(), "bad.service")
	os.WriteFile(unit, []byte("[Service]\nType=notify\nExecStart=/bin/true\nWatchdogSecs=30s\n"), 0o644)
	var stderr bytes.Buffer
	cmd := exec.Command(tool, "verify", unit)
	cmd.Stderr = &stderr
	_ = cmd.Run()
	if !strings.Contains(stderr.String(), "WatchdogSecs") {
		t.Fatalf("no warning about an unknown key: %q", stderr.String())
	}
}
