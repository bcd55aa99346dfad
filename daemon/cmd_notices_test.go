package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"materializer/internal/e2etest"
	"materializer/internal/natstest"
	"materializer/pipeline/notify"
)

// tailProc is a running `materializer notices` whose stdout lines arrive
// on lines.
type tailProc struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr strings.Builder
	done   chan struct{}
}

func startNotices(t *testing.T, args ...string) *tailProc {
	t.Helper()
	p := &tailProc{cmd: exec.Command(binPath, append([]string{"notices"}, args...)...), lines: make(chan string, 100), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done; _ = p.cmd.Wait() })
	return p
}

// next waits up to 30 s for the next line.
func (p *tailProc) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-p.lines:
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("no notice line within 30s; stderr: %s", p.stderr.String())
		return ""
	}
}

func TestNoticesTailsDeliveredFiles(t *testing.T) {
	ns := natstest.Start(t)
	dir := t.TempDir()
	nk := e2etest.ArticleEmulator(t, 2)
	path := testConfig(t, dir, configOpts{DataDir: filepath.Join(dir, "data"), NakadiURL: nk.URL()})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n[notify]\nnats_url = \"" + ns.URL() + "\"\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run := startRun(t, path)
	base := run.adminURL()
	run.waitLog("ready")

	// -from new: the tail must be subscribed before the flush publishes.
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() int {
		s, err := js.Stream(t.Context(), "MATERIALIZER_FILES")
		if err != nil {
			return -1
		}
		info, err := s.Info(t.Context())
		if err != nil {
			return -1
		}
		return info.State.Consumers
	}
	e2etest.WaitFor(t, 30*time.Second, "the notice stream", func() bool { return consumers() >= 0 })
	live := startNotices(t, "-config", path)
	e2etest.WaitFor(t, 30*time.Second, "the tail's consumer", func() bool { return consumers() >= 1 })
	events := e2etest.Generate(5, 10, 40)
	e2etest.Publish(t, nk, events)
	// Wait until the events are in, then flush them into files.
	e2etest.WaitFor(t, 30*time.Second, "40 events received", func() bool {
		_, body := get(t, base+"/v1/status")
		return strings.Contains(body, `"received": 40,`)
	})
	if code, body := do(t, "POST", base+"/v1/flush", ""); code != 200 {
		t.Fatalf("flush: %d %s", code, body)
	}

	first := live.next(t)
	n, err := notify.ParseNotice([]byte(first))
	if err != nil || n.EventType != "article.updated" || n.Table != "article" ||
		!strings.HasPrefix(n.URL, "file://"+filepath.Join(dir, "storage")+"/article.updated/article/") {
		t.Fatalf("first notice: %v\n%s", err, first)
	}
	if _, err := os.Stat(strings.TrimPrefix(n.URL, "file://")); err != nil {
		t.Errorf("the notice names a file that is not there: %v", err)
	}

	// From the start of the stream, filtered by event type, the same notice
	// comes again.
	all := startNotices(t, "-config", path, "-event-type", "article.updated", "-from", "all")
	if again := all.next(t); !strings.Contains(again, `"id":"`) || !isNoticeOf(again, "article.updated") {
		t.Errorf("-from all: %s", again)
	}
	live.cmd.Process.Signal(syscall.SIGINT)
	<-live.done
	if err := live.cmd.Wait(); err != nil {
		t.Errorf("notices after SIGINT: %v (want exit 0); stderr %s", err, live.stderr.String())
	}
}

func isNoticeOf(line, eventType string) bool {
	n, err := notify.ParseNotice([]byte(line))
	return err == nil && n.EventType == eventType
}

func TestNoticesUsageErrors(t *testing.T) {
	dir := t.TempDir()
	path := testConfig(t, dir, configOpts{DataDir: dir, NakadiURL: "http://127.0.0.1:1"})
	code, _, stderr := runBinary(t, "notices", "-config", path)
	if want := "materializer notices: " + path + ": notify.nats_url is empty: this daemon publishes no notices\n"; code != 2 || stderr != want {
		t.Errorf("no nats_url: exit %d, stderr %q", code, stderr)
	}
	ns := natstest.Start(t)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n[notify]\nnats_url = \"" + ns.URL() + "\"\n")
	f.Close()
	code, _, stderr = runBinary(t, "notices", "-config", path, "-from", "yesterday")
	if code != 2 || !strings.Contains(stderr, `from "yesterday": want new, all, last, an RFC 3339 time or a duration`) {
		t.Errorf("-from yesterday: exit %d, stderr %q", code, stderr)
	}
}
