package main

import (
	"context"
	"materializer/internal/articles"
	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// demoTestConfig is conf/demo.toml with a shorter session gap and roll age
// (so that files roll within seconds) and an admin port of the system's
// choice.
func demoTestConfig(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile("../conf/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for old, repl := range map[string]string{
		`admin_listen = "127.0.0.1:8080"`: `admin_listen = "127.0.0.1:0"`,
		`session_gap   = "5s"`:            `session_gap   = "2s"`,
		`roll_max_age     = "20s"`:        `roll_max_age     = "3s"`,
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("conf/demo.toml no longer holds %q", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	path := filepath.Join(dir, "demo.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	summaryLine   = regexp.MustCompile(`(?m)^\[ *\S+\] published \d+ \| received \d+ = .* \| files delivered: (\d+) main, (\d+) correction, (\d+) rejected \| notices (\d+)$`)
	finalLine     = regexp.MustCompile(`(?m)^demo finished after \S+: published (\d+) \| received (\d+) = main (\d+) \+ superseded (\d+) \+ duplicate (\d+) \+ correction (\d+) \+ rejected (\d+) \+ open (\d+) \(balanced\) \| files delivered: (\d+) main, (\d+) correction, (\d+) rejected \| notices (\d+)$`)
	generatedLine = regexp.MustCompile(`(?m)^generated (\d+) events \(seed (\d+), (\d+) articles, window (\d+), step (\d+)\)$`)
)

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// `materializer demo -duration` runs the whole product in one process:
// files roll and are announced during the run, the clean stop flushes the
// rest, and what was delivered is exactly what the generated events must
// produce (docs/design.md), with one notice per file.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	cfg := demoTestConfig(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "demo", "-config", cfg, "-duration", "14s", "-every", "2s", "-rate", "300", "-seed", "7")
	cmd.Dir = dir
	var stdout, stderr e2etest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("demo stdout:\n%s\ndemo stderr:\n%s", stdout.String(), stderr.String())
		}
	}()

	// While it runs, the banner's status command works.
	e2etest.WaitFor(t, 60*time.Second, "the banner", func() bool { return strings.Contains(stdout.String(), "Where to look:") })
	var status string
	e2etest.WaitFor(t, 30*time.Second, "status of the demo", func() bool {
		_, status, _ = runBinary(t, "status", "-config", filepath.Join(dir, "var", "demo.toml"))
		return strings.Contains(status, "article.updated: consuming")
	})

	if err := <-done; err != nil {
		t.Fatalf("demo: %v (want exit 0)", err)
	}
	out := stdout.String()
	fin, gen := finalLine.FindStringSubmatch(out), generatedLine.FindStringSubmatch(out)
	if fin == nil || gen == nil {
		t.Fatal("no final summary")
	}
	// Files rolled by age and were announced before the final flush.
	rolled := false
	for _, m := range summaryLine.FindAllStringSubmatch(out, -1) {
		rolled = rolled || atoi(m[1]) > 0 && atoi(m[2]) > 0 && atoi(m[4]) > 0
	}
	if !rolled {
		t.Error("no summary during the run shows main and correction files delivered and notices published")
	}

	// Regenerate the events the demo published and compare.
	n := atoi(gen[1])
	g := articles.New(uint64(atoi(gen[2])), atoi(gen[3]), time.Now)
	w := articles.Window{Width: atoi(gen[4]), Step: atoi(gen[5])}
	events := make([]articles.Event, n)
	for i := range events {
		events[i] = g.NextIn(&w)
	}
	x := e2etest.Expect(events)
	corrections := 0
	for _, c := range x.Corrections {
		corrections += c
	}
	if atoi(fin[1]) != n || atoi(fin[2]) != n || atoi(fin[5]) != x.Duplicates || atoi(fin[6]) != corrections ||
		atoi(fin[7]) != x.Rejected || atoi(fin[8]) != 0 {
		t.Errorf("final counters %q; want %d received, %d duplicate, %d correction, %d rejected, 0 open",
			fin[0], n, x.Duplicates, corrections, x.Rejected)
	}
	if sup, main := atoi(fin[4]), atoi(fin[3]); sup < main {
		t.Errorf("superseded %d < main %d: the generator's bursts should compact", sup, main)
	}
	files := e2etest.ReadDelivered(t, filepath.Join(dir, "var", "storage"))
	e2etest.CheckDelivered(t, files, x)
	if total := atoi(fin[9]) + atoi(fin[10]) + atoi(fin[11]); total != len(files) || atoi(fin[12]) != len(files) {
		t.Errorf("final line counts %d files and %s notices; storage holds %d files", total, fin[12], len(files))
	}

	// The notices are in the demo's JetStream store: one per file.
	ns := natstest.Start(t, natstest.WithStoreDir(filepath.Join(dir, "var", "nats")))
	e2etest.CheckNotices(t, ns.URL(), files)
}
