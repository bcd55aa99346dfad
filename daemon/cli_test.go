package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// defaultBudget is how `check` shows the split of the default
// daemon.memory_limit.
const defaultBudget = "memory 512MiB = Pebble memtables 96MiB (3 × 32MiB) + block cache 64MiB + key cache 128MiB (~1.3M keys) + Go heap 160MiB (consumer batches up to 40MiB) + reserve 64MiB\n"

// TestCheckShippedConfigs round-trips conf/example.toml and conf/demo.toml
// through `materializer check`.
func TestCheckShippedConfigs(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"check", "-config", "../conf/example.toml"},
			"conf ok: 2 event types, 3 tables, storage s3://dwh-landing/materializer, notices on\n" + defaultBudget},
		{[]string{"check", "-demo", "-config", "../conf/demo.toml"},
			"conf ok: 1 event type, 2 tables, storage file:///tmp/materializer-demo/storage, notices off\n" + defaultBudget},
	}
	for _, tc := range cases {
		code, stdout, stderr := runBinary(t, tc.args...)
		if code != 0 || stdout != tc.want || stderr != "" {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestCheckBadConfigListsEveryProblem(t *testing.T) {
	data, err := os.ReadFile("../conf/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for old, repl := range map[string]string{
		`batch_limit            = 500`: `batch_limit            = 0`,
		`session_gap   = "1m"`:         `session_gap   = "0s"`,
		`path = "sizes[*].qty"`:        `path = "sizes[*.qty"`,
		`log_level        = "info"`:    `log_levle        = "info"`,
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("example.toml no longer holds %q", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runBinary(t, "check", "-config", path)
	want := "materializer: " + path + ": 4 problems:\n" +
		"  daemon.log_levle: unknown key (did you mean \"log_level\"?)\n" +
		"  nakadi.batch_limit: 0 must be >= 1\n" +
		"  event_types[0].tables[1].columns[3].path: \"sizes[*.qty\" is not a valid path: expected ']' at byte 7\n" +
		"  event_types[1].session_gap: \"0s\" must be > 0\n"
	if code != 2 || stdout != "" || stderr != want {
		t.Fatalf("exit %d\nstdout %q\nstderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
	}
}

func TestCheckUnreadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.toml")
	code, stdout, stderr := runBinary(t, "check", "-config", path)
	if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 ||
		!strings.Contains(stderr, path) || !strings.Contains(stderr, "no such file") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// The cases verified by hand: a URL whose userinfo is a bare token, a
// password in the second URL of a NATS list, a password in a URL; and the
// admin token file's content.
func TestCheckDoesNotPrintSecrets(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cr3t-admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := testConfig(t, dir, configOpts{DataDir: dir, TokenFile: token})
	data, _ := os.ReadFile(path)
	nakadiURL := regexp.MustCompile(`(?m)^url                = ".*"$`)
	for _, tc := range []struct{ nakadi, nats, key string }{
		{`https://me:hunter2@nakadi`, "", "nakadi.url"},
		{`https://SECRETTOKEN@nakadi.example.org`, "", "nakadi.url"},
		{`https://nakadi.example.org`, `nats://h1:4222,nats://user:SECRETPW@h2:4222`, "notify.nats_url"},
		{`https://SECRETTOKEN@nakadi.example.org`, `nats://SECRETTOKEN@h1:4222, nats://user:SECRETPW@h2:4222`, "notify.nats_url"},
		{`https://nakadi.example.org`, `nats://user:SECRETPW@h1:4222,%zz://user:SECRETPW@h2`, "notify.nats_url"},
	} {
		bad := nakadiURL.ReplaceAllString(string(data), fmt.Sprintf("url = %q", tc.nakadi))
		if tc.nats != "" {
			bad += fmt.Sprintf("\n[notify]\nnats_url = %q\n", tc.nats)
		}
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runBinary(t, "check", "-config", path)
		if code != 2 || !strings.Contains(stderr, tc.key) {
			t.Fatalf("%s / %s: exit %d, stderr %q", tc.nakadi, tc.nats, code, stderr)
		}
		for _, secret := range []string{"hunter2", "s3cr3t", "SECRETTOKEN", "SECRETPW"} {
			if out := stdout + stderr; strings.Contains(out, secret) {
				t.Fatalf("%s / %s: %s is printed: %q", tc.nakadi, tc.nats, secret, out)
			}
		}
	}
}

func TestUsage(t *testing.T) {
	listsCommands := regexp.MustCompile(`(?s)usage: materializer <command>.*run .*check .*flatten .*ddl .*checkpoint .*status .*notices .*demo .*version `)
	for _, tc := range []struct {
		args     []string
		code     int
		onStdout bool
	}{
		{nil, 2, false},
		{[]string{"-h"}, 0, true},
		{[]string{"help"}, 0, true},
		{[]string{"frobnicate"}, 2, false},
	} {
		code, stdout, stderr := runBinary(t, tc.args...)
		out := stderr
		if tc.onStdout {
			out = stdout
		}
		if code != tc.code || !listsCommands.MatchString(out) {
			t.Errorf("%v: exit %d (want %d)\nstdout %q\nstderr %q", tc.args, code, tc.code, stdout, stderr)
		}
	}
	if _, _, stderr := runBinary(t, "frobnicate"); !strings.HasPrefix(stderr, `materializer: unknown command "frobnicate"`) {
		t.Errorf("unknown command: %q", stderr)
	}
}

func TestCommandFlags(t *testing.T) {
	code, _, stderr := runBinary(t, "run", "-h")
	if code != 0 || !strings.Contains(stderr, "usage: materializer run -config FILE") || !strings.Contains(stderr, "-config") {
		t.Errorf("run -h: exit %d, %q", code, stderr)
	}
	code, _, stderr = runBinary(t, "check", "-nope")
	if code != 2 || !strings.Contains(stderr, "flag provided but not defined: -nope") {
		t.Errorf("check -nope: exit %d, %q", code, stderr)
	}
	code, _, stderr = runBinary(t, "check", "-config", "x.toml", "extra")
	if code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("check extra: exit %d, %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runBinary(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "materializer dev (go") {
		t.Fatalf("exit %d, %q", code, stdout)
	}
}

// The binary links no test helper of ours: packages that ship have product
// names (the demo's emulator is pipeline/nakadi/emulator).
func TestBinaryLinksNoTestPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "materializer/") && strings.HasSuffix(dep, "test") {
			t.Errorf("the binary links %s", dep)
		}
	}
}
