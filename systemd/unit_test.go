// Package systemd holds the unit file of materializer and its tests; it has
// no Go code of its own.
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

const unitFile = "materializer.service"

// directives parses the unit: "Section.Key" -> values in order.
func directives(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(unitFile)
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

func TestUnitDirectives(t *testing.T) {
	d := directives(t)
	want := map[string]string{
		"Service.Type":                     "notify",
		"Service.ExecStart":                "/usr/local/bin/materializer run -config /etc/materializer/materializer.toml",
		"Service.ExecReload":               "/bin/kill -HUP $MAINPID",
		"Service.Restart":                  "on-failure",
		"Service.StateDirectory":           "materializer",
		"Service.ReadWritePaths":           "/var/lib/materializer",
		"Service.NoNewPrivileges":          "yes",
		"Service.ProtectSystem":            "strict",
		"Service.PrivateTmp":               "yes",
		"Service.ProtectHome":              "yes",
		"Service.User":                     "materializer",
		"Service.RestartPreventExitStatus": "2",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(d["Service.WatchdogSec"]) != 1 {
		t.Errorf("WatchdogSec missing")
	}
}

// TestStopTimeoutExceedsDrain: systemd must not SIGKILL a daemon that is
// still inside its drain budget, nor one that ran out of it and is saying
// what stays (the admin server's shutdown takes up to 5 s after it).
func TestStopTimeoutExceedsDrain(t *testing.T) {
	d := directives(t)
	stop, err := time.ParseDuration(strings.TrimSpace(d["Service.TimeoutStopSec"][0]))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	drain := conf.Default().Daemon.DrainTimeout.Duration()
	if stop < drain+15*time.Second {
		t.Fatalf("TimeoutStopSec %v must exceed the default daemon.drain_timeout %v by 15s at least", stop, drain)
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
		t.Skip("systemd-analyze not installed: the unit file is not verified")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), unitFile)
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
