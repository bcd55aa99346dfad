package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"materializer/checkpoint"
	"materializer/internal/e2etest"
)

// The checkpoint commands with the real binary: create asks the running
// daemon; restore refuses while it runs; a clean stop takes one more
// (on_shutdown); list and restore work with the data dir gone; a config
// that shapes state differently is refused naming each difference; a
// corrupt newest checkpoint is skipped with the reason; declining the
// prompt changes nothing; run refuses a data dir whose restore did not
// reset the cursors.
func TestCheckpointCommands(t *testing.T) {
	nk := e2etest.ArticleEmulator(t, 2)
	root := t.TempDir()
	remoteDir := filepath.Join(root, "remote")
	s := e2etest.Setup{Dir: filepath.Join(root, "d"), NakadiURL: nk.URL(), CheckpointURL: "file://" + remoteDir,
		Admin: freeAddr(t), Extra: "on_shutdown = true"}
	path, cfg := e2etest.Config(t, s)
	events := e2etest.Generate(5, 50, 500)
	e2etest.Publish(t, nk, events)

	p := startRun(t, path)
	admin := p.adminURL()
	waitStatus(t, admin+"/readyz", 200)
	waitReceived(t, admin, 500, 30*time.Second)
	code, out, errOut := runBinary(t, "checkpoint", "create", "-config", path)
	if code != 0 || !regexp.MustCompile(`^checkpoint \S+ taken in .* \(ingestion paused .*\): .* files, `).MatchString(out) ||
		!strings.Contains(out, "remote copy: ") {
		t.Fatalf("create: exit %d\n%s\n%s", code, out, errOut)
	}
	first := strings.Fields(out)[1]
	if code, body := get(t, admin+"/v1/checkpoints"); code != 200 || !strings.Contains(body, `"id": "`+first+`"`) {
		t.Errorf("GET /v1/checkpoints: %d %s", code, body)
	}
	code, out, _ = runBinary(t, "checkpoint", "list", "-config", path)
	if code != 0 || !regexp.MustCompile(first+` +local +[0-9]+s ago .* [0-9]+ files`).MatchString(out) || !regexp.MustCompile(first+` +remote `).MatchString(out) ||
		!strings.Contains(out, "article.updated  p0=001-0001-") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	code, _, errOut = runBinary(t, "checkpoint", "restore", "-config", path, "-id", "latest", "-yes")
	if code != 1 || !strings.Contains(errOut, "is locked by pid") {
		t.Fatalf("restore while running: exit %d: %s", code, errOut)
	}
	p.stopOK(30*time.Second, "stop")
	p.waitLog("shutdown checkpoint taken")

	if err := os.RemoveAll(cfg.Daemon.DataDir); err != nil { // the disk is lost
		t.Fatal(err)
	}
	code, out, _ = runBinary(t, "checkpoint", "list", "-config", path, "-json")
	var list []checkpoint.Info
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 || list[0].Where != "remote" || list[1].ID != first {
		t.Fatalf("list with the data dir gone: exit %d %v\n%s", code, err, out)
	}
	newest := list[0].ID

	s.Dir, s.Ordering, s.PriceType = filepath.Join(root, "other"), "string", "string"
	otherPath, _ := e2etest.Config(t, s)
	code, _, errOut = runBinary(t, "checkpoint", "restore", "-config", otherPath, "-id", "latest", "-yes")
	for _, want := range []string{`ordering is "number" in the checkpoint, the config says "string"`,
		"table article has columns [article_id:int brand:string version:int price:decimal occurred_at:timestamp] in the checkpoint, the config says [article_id:int brand:string version:int price:string occurred_at:timestamp]"} {
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("restore with another config: exit %d, want 2 and %q in:\n%s", code, want, errOut)
		}
	}

	corruptObject(t, remoteDir, uniqueObject(t, remoteManifest(t, remoteDir, newest), remoteManifest(t, remoteDir, first)))
	code, out, errOut = runCLI(t, "no\n", "checkpoint", "restore", "-config", path, "-id", "latest")
	if code != 1 || !strings.Contains(errOut, "not confirmed; nothing changed") || !strings.Contains(out, "restore? type yes") {
		t.Errorf("declined: exit %d\n%s\n%s", code, out, errOut)
	}
	if left, _ := filepath.Glob(cfg.Daemon.DataDir + "*"); len(left) != 0 {
		t.Errorf("a declined restore left %v", left)
	}
	code, out, errOut = runBinary(t, "checkpoint", "restore", "-config", path, "-id", "latest", "-yes")
	if code != 0 || !strings.Contains(errOut, "skipping checkpoint "+newest+" (remote): ") || !strings.Contains(errOut, "has sha256") ||
		!strings.Contains(out, "restored checkpoint "+first) {
		t.Fatalf("restore skipping the corrupt one: exit %d\n%s\n%s", code, out, errOut)
	}

	pending := filepath.Join(cfg.Daemon.DataDir, checkpoint.PendingName)
	if err := os.WriteFile(pending, []byte(`{"checkpoint":"`+first+`","resets":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runBinary(t, "run", "-config", path)
	if code != 1 || !strings.Contains(errOut, "checkpoint restore -resume") {
		t.Errorf("run with a pending restore: exit %d: %s", code, errOut)
	}
	code, out, _ = runBinary(t, "checkpoint", "restore", "-config", path, "-resume")
	if _, err := os.Stat(pending); code != 0 || !os.IsNotExist(err) || !strings.Contains(out, "done: start the daemon") {
		t.Errorf("resume: exit %d, marker %v\n%s", code, err, out)
	}
}

func remoteManifest(t *testing.T, dir, id string) *checkpoint.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifests", id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m checkpoint.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// uniqueObject returns a non-empty object of m that other does not share.
func uniqueObject(t *testing.T, m, other *checkpoint.Manifest) string {
	t.Helper()
	shared := map[string]bool{}
	for _, f := range other.Files {
		shared[f.SHA256] = true
	}
	for _, f := range m.Files {
		if f.Size > 0 && !shared[f.SHA256] {
			return f.SHA256
		}
	}
	t.Fatal("no object of its own")
	return ""
}

// corruptObject replaces a remote object with other bytes of its size.
func corruptObject(t *testing.T, dir, sha string) {
	t.Helper()
	path := filepath.Join(dir, "objects", sha)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x55
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout bool
		says   string
	}{
		{[]string{"checkpoint"}, 2, false, "usage: materializer checkpoint <subcommand>"},
		{[]string{"checkpoint", "-h"}, 0, true, "restore   -id ID|latest"},
		{[]string{"checkpoint", "nope"}, 2, false, `unknown subcommand "nope"`},
		{[]string{"checkpoint", "restore", "-config", "x.toml"}, 2, false, "give -id ID|latest, or -resume"},
		{[]string{"checkpoint", "list", "-h"}, 0, false, "usage: materializer checkpoint list -config FILE [-from URL] [-json]"},
	} {
		code, out, errOut := runCLI(t, "", tc.args...)
		text := errOut
		if tc.stdout {
			text = out
		}
		if code != tc.code || !strings.Contains(text, tc.says) {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q", tc.args, code, out, errOut)
		}
	}
}
