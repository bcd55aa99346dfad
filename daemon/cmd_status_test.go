package main

import (
	"encoding/json"
	"materializer/internal/e2etest"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestStatusOfRunningDaemon(t *testing.T) {
	dir := t.TempDir()
	nk := e2etest.ArticleEmulator(t, 2)
	addr := freeAddr(t)
	// With a token, `status` sends it (GET /v1/status needs it then).
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("status-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := testConfig(t, dir, configOpts{DataDir: filepath.Join(dir, "data"), AdminListen: addr, NakadiURL: nk.URL(), TokenFile: token})
	p := startRun(t, path)
	p.waitLog("ready")

	events := e2etest.Generate(3, 20, 50)
	e2etest.Publish(t, nk, events)
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out, "received 50 = ") {
		if time.Now().After(deadline) {
			t.Fatalf("status never showed 50 events received:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
		var code int
		var stderr string
		if code, out, stderr = runBinary(t, "status", "-config", path); code != 0 {
			t.Fatalf("status: exit %d: %s", code, stderr)
		}
	}
	for _, re := range []string{
		`(?m)^materializer dev on ` + regexp.QuoteMeta(addr) + `: ready, up \S+ \(since \S+Z\)$`,
		`(?m)^memory: resident \S+ MiB of 512\.0 MiB; Go \S+ \S+ \(soft limit \S+ MiB\), key cache \S+ \S+, Pebble \S+ \S+, consumer batches \S+ \S+ of 40\.0 MiB$`,
		`(?m)^delivery: 0 pending \(0 B\), 0 uploaded and waiting for their notice, 0 failing$`,
		`(?m)^article\.updated: consuming$`,
		`(?m)^  events      received 50 = main 0 \+ superseded \d+ \+ duplicate \d+ \+ correction \d+ \+ rejected \d+ \+ open \d+ \(balanced\)$`,
		`(?m)^  sessions    \d+ open$`,
		`(?m)^  nakadi      subscription [0-9a-f-]{36}, stream [0-9a-f-]{36}$`,
		`(?m)^  partition +applied offset +committed offset +lag +received +open files$`,
		`(?m)^  0 +001-0001-\d+ +(001-0001-\d+|-) +(\d+|\?) +\d+ +\d+ \(`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status output does not match %s:\n%s", re, out)
		}
	}

	code, raw, stderr := runBinary(t, "status", "-config", path, "-json")
	var doc statusView
	if code != 0 || json.Unmarshal([]byte(raw), &doc) != nil || !doc.Ready || len(doc.EventTypes) != 1 ||
		doc.EventTypes[0].Counters.Received != 50 {
		t.Errorf("status -json: exit %d, stderr %q, body:\n%s", code, stderr, raw)
	}
	var tree any
	if err := json.Unmarshal([]byte(raw), &tree); err != nil {
		t.Fatal(err)
	}
	checkSnakeCase(t, "", tree)
	// The budget adds up to the limit; the process is within it, and Go's
	// soft limit is at least the heap's share (the governor lends it what
	// Pebble and the key cache do not use).
	b, u := doc.Memory.Budget, doc.Memory.InUse
	if b.Limit != 512<<20 || b.MemTables+b.BlockCache+b.KeyCache+b.GoHeap+b.Reserve != b.Limit || b.ConsumerBatches != b.GoHeap/4 {
		t.Errorf("budget does not add up: %+v", b)
	}
	if u.Resident <= 0 || u.Resident > b.Limit || u.GoLimit < b.GoHeap || u.GoLimit > b.Limit {
		t.Errorf("memory in use: %+v; want 0 < resident ≤ limit and go_heap ≤ go_limit ≤ limit (budget %+v)", u, b)
	}

	p.stopOK(30*time.Second, "run")
	code, stdout, stderr := runBinary(t, "status", "-config", path)
	want := "materializer status: no daemon is running on " + addr + " (connection refused): start it with `materializer run`, or check daemon.admin_listen\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("stopped daemon: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, want)
	}
}

func TestAdminBaseURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		":8080":          "http://127.0.0.1:8080",
		"0.0.0.0:9":      "http://127.0.0.1:9",
		"[::]:9":         "http://[::1]:9",
		"[::1]:9":        "http://[::1]:9",
		"admin.local:80": "http://admin.local:80",
	} {
		if got, err := adminBaseURL(listen); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := adminBaseURL("127.0.0.1:0"); err == nil {
		t.Error("port 0: no error")
	}
}

// checkSnakeCase fails for every JSON object key that is not snake_case.
func checkSnakeCase(t *testing.T, at string, v any) {
	t.Helper()
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !snake.MatchString(k) {
				t.Errorf("/v1/status key %s%s is not snake_case", at, k)
			}
			checkSnakeCase(t, at+k+".", x)
		}
	case []any:
		for _, x := range v {
			checkSnakeCase(t, at, x)
		}
	}
}
