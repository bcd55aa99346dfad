package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// notifySocket is a real unixgram socket standing in for systemd.
type notifySocket struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T, path string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{conn: conn}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *notifySocket) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// waitFor polls until a message satisfies ok; it returns its index.
func (s *notifySocket) waitFor(t *testing.T, what string, ok func(string) bool) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for i, m := range s.messages() {
			if ok(m) {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s notification; got %q", what, s.messages())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestSdNotifierSends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	s := listenNotify(t, path)
	n := sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": path}))
	if err := n.Send("READY=1", "STATUS=hello"); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "READY", func(m string) bool { return m == "READY=1\nSTATUS=hello" })
}

func TestSdNotifierAbstractSocket(t *testing.T) {
	name := "materializer-test-" + strconv.Itoa(os.Getpid())
	s := listenNotify(t, "\x00"+name)
	n := sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": "@" + name}))
	if err := n.Send("WATCHDOG=1"); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "WATCHDOG", func(m string) bool { return m == "WATCHDOG=1" })
}

func TestSdNotifierOff(t *testing.T) {
	n := sdNotifierFromEnv(env(nil))
	if err := n.Send("READY=1"); err != nil || n.WatchdogInterval() != 0 {
		t.Fatalf("without NOTIFY_SOCKET: %v, watchdog %v", err, n.WatchdogInterval())
	}
	n = sdNotifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "nobody")}))
	if err := n.Send("READY=1"); err == nil {
		t.Fatal("Send to a missing socket: no error")
	}
}

func TestSdNotifierWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"30000000", "", 15 * time.Second},
		{"30000000", self, 15 * time.Second},
		{"30000000", "1", 0}, // meant for another process
		{"", "", 0},
		{"0", "", 0},
		{"x", "", 0},
	} {
		n := sdNotifierFromEnv(env(map[string]string{"WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid}))
		if got := n.WatchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}

// TestRunNotifiesSystemd runs the real daemon against a notify socket:
// READY=1 once ready, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on
// SIGTERM, STATUS= lines throughout.
func TestRunNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	s := listenNotify(t, sock)
	p := startRun(t, testConfig(t, dir, configOpts{DataDir: filepath.Join(dir, "data")}),
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	p.waitLog("ready")

	starting := s.waitFor(t, "STATUS=starting", func(m string) bool { return m == "STATUS=starting" })
	ready := s.waitFor(t, "READY=1", func(m string) bool {
		return strings.HasPrefix(m, "READY=1\nSTATUS=ready: 1 event type, admin on 127.0.0.1:")
	})
	pings := func() int {
		n := 0
		for _, m := range s.messages() {
			if m == "WATCHDOG=1" {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for pings() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 WATCHDOG=1 in 30 s: %q", s.messages())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stopOK(15*time.Second, "stop")
	stopping := s.waitFor(t, "STOPPING=1", func(m string) bool { return m == "STOPPING=1\nSTATUS=draining" })
	if !(starting < ready && ready < stopping) {
		t.Fatalf("order starting %d, ready %d, stopping %d: %q", starting, ready, stopping, s.messages())
	}
	if n := strings.Count(strings.Join(s.messages(), "\n"), "READY=1"); n != 1 {
		t.Fatalf("READY=1 sent %d times", n)
	}
}
