package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"materializer/pipeline"
	"materializer/pipeline/nakadi/emulator"
)

// reloadConfig writes a config with the given event types (TOML snippets)
// and storage roll rows.
func reloadConfig(t *testing.T, dir, nakadiURL string, rollRows int, eventTypes ...string) string {
	t.Helper()
	text := fmt.Sprintf(`
[daemon]
data_dir = %q
admin_listen = "127.0.0.1:0"
log_format = "json"
[nakadi]
url = %q
owning_application = "materializer-test"
read_from = "begin"
[storage]
url = "file://%s"
roll_max_rows = %d
%s`, filepath.Join(dir, "data"), nakadiURL, filepath.Join(dir, "storage"), rollRows, strings.Join(eventTypes, "\n"))
	path := filepath.Join(dir, "materializer.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// reloadEmulator serves the reload tests' event types, article.updated and
// price.changed, with two partitions each.
func reloadEmulator(t *testing.T) *emulator.Server {
	t.Helper()
	nk := emulator.NewServer(emulator.Options{})
	t.Cleanup(nk.Close)
	for _, et := range []string{"article.updated", "price.changed"} {
		if err := nk.CreateEventType(et, 2, []string{"id"}); err != nil {
			t.Fatal(err)
		}
	}
	return nk
}

func eventTypeTOML(name, key string) string {
	return fmt.Sprintf(`
[[event_types]]
name = %q
partition_key = [%q]
ordering_key = "version"
ordering = "number"
session_gap = "1h"
session_max = "2h"
  [[event_types.tables]]
  name = "t"
  columns = [{ name = "id", path = %q, type = "int" }, { name = "version", path = "version", type = "int" }]
`, name, key, key)
}

// SIGHUP applies what is safe (roll limits, a new event type) and refuses,
// as a whole, a reload that would change the state's layout — naming the
// key, old and new value — and keeps running on the old config.
func TestSIGHUPAppliesSafeChangesAndRefusesLayoutChanges(t *testing.T) {
	nk := reloadEmulator(t)
	dir := t.TempDir()
	article, price := eventTypeTOML("article.updated", "id"), eventTypeTOML("price.changed", "id")
	path := reloadConfig(t, dir, nk.URL(), 0, article)
	p := startRun(t, path)
	base := p.adminURL()
	waitStatus(t, base+"/readyz", 200)

	reloadConfig(t, dir, nk.URL(), 50, article, price)
	p.signal(syscall.SIGHUP)
	m := p.waitLog("configuration reloaded")
	applied := fmt.Sprint(m["applied"])
	if !strings.Contains(applied, "storage.roll_max_rows") || !strings.Contains(applied, "event_types[name=price.changed] (added)") {
		t.Errorf("applied %s", applied)
	}
	p.waitLog("reload: consuming a new event type")
	waitStatus(t, base+"/readyz", 200)

	reloadConfig(t, dir, nk.URL(), 50, eventTypeTOML("article.updated", "article_id"), price)
	p.signal(syscall.SIGHUP)
	m = p.waitLog("reload refused: these changes would change the meaning of the stored state; keeping the running configuration (restore a checkpoint taken with the new config, or use a new data dir and consumer group)")
	if refused := fmt.Sprint(m["refused"]); !strings.Contains(refused, `event_types[name=article.updated].partition_key: ["id"] → ["article_id"]`) {
		t.Errorf("refused %s", refused)
	}

	// Both event types still run on the old config: events of the added one
	// are delivered.
	if err := nk.Publish("price.changed", []byte(`{"metadata":{"eid":"5a7c7e44-4a39-4d3c-9b8e-2a3f1d0c9e11","occurred_at":"2026-11-21T00:00:00Z"},"id":7,"version":3}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, base+"/v1/status")
		var st struct {
			EventTypes []pipeline.EventTypeStatus `json:"event_types"`
		}
		if code == 200 && json.Unmarshal([]byte(body), &st) == nil && len(st.EventTypes) == 2 && st.EventTypes[1].Counters.Received == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("price.changed event not received: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := do(t, "POST", base+"/v1/flush?event_type=price.changed", ""); code != 200 || !strings.Contains(body, "price.changed/t/main/") {
		t.Fatalf("flush: %d %s", code, body)
	}
	p.stopOK(15*time.Second, "stop")
}

// A SIGHUP reads the include patterns again: an event type in a file added
// since the start starts consuming; a broken file added later is refused
// with its file and key, and the daemon keeps running.
func TestSIGHUPStartsEventTypesOfAddedIncludeFiles(t *testing.T) {
	nk := reloadEmulator(t)
	dir := t.TempDir()
	incDir := filepath.Join(dir, "event-types.d")
	if err := os.MkdirAll(incDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeInc := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(incDir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeInc("article.toml", eventTypeTOML("article.updated", "id"))
	path := reloadConfig(t, dir, nk.URL(), 0)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append([]byte(`include = ["event-types.d/*.toml"]`), text...), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startRun(t, path)
	base := p.adminURL()
	waitStatus(t, base+"/readyz", 200)

	writeInc("price.toml", eventTypeTOML("price.changed", "id"))
	p.signal(syscall.SIGHUP)
	if applied := fmt.Sprint(p.waitLog("configuration reloaded")["applied"]); !strings.Contains(applied, "event_types[name=price.changed] (added)") {
		t.Errorf("applied %s", applied)
	}
	p.waitLog("reload: consuming a new event type")
	waitStatus(t, base+"/readyz", 200)

	writeInc("broken.toml", strings.Replace(eventTypeTOML("stock.changed", "id"), `ordering = "number"`, `ordering = "sometimes"`, 1))
	p.signal(syscall.SIGHUP)
	problems := fmt.Sprint(p.waitLog("reload failed: keeping the running configuration")["problems"])
	if !strings.Contains(problems, "broken.toml") || !strings.Contains(problems, "ordering") {
		t.Errorf("the problem does not name the file and the key: %s", problems)
	}
	code, body := get(t, base+"/v1/status")
	var st struct {
		EventTypes []pipeline.EventTypeStatus `json:"event_types"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("status: %d %v %s", code, err, body)
	}
	var names []string
	for _, et := range st.EventTypes {
		names = append(names, et.Name)
	}
	if fmt.Sprint(names) != "[article.updated price.changed]" {
		t.Errorf("event types after the reloads: %v", names)
	}
	p.stopOK(15*time.Second, "stop")
}
