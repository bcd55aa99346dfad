package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `materializer drain` hands the member's work over and leaves it idle but
// alive: /readyz answers 503 "drained", the status says so; `drain -undo`
// makes it consume again; a stop afterwards is clean.
func TestDrainCommand(t *testing.T) {
	dir := t.TempDir()
	path := testConfig(t, dir, configOpts{DataDir: filepath.Join(dir, "data"), AdminListen: freeAddr(t)})
	p := startRun(t, path)
	base := p.adminURL()
	waitStatus(t, base+"/readyz", 200)

	code, out, errOut := runBinary(t, "drain", "-config", path)
	if code != 0 || !strings.HasPrefix(out, "drained in ") || !strings.Contains(out, "holds nothing and reads nothing") {
		t.Fatalf("drain: exit %d\n%s%s", code, out, errOut)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || strings.TrimSpace(body) != "drained" {
		t.Fatalf("/readyz after a drain: %d %q", code, body)
	}
	var st statusDoc
	_, body := get(t, base+"/v1/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil || !st.Drained || st.Ready || st.EventTypes[0].State != "drained" || st.WriterID == "" {
		t.Fatalf("status after a drain: %v %s", err, body)
	}
	if code, out, errOut := runBinary(t, "status", "-config", path); code != 0 || !strings.Contains(out, ": drained") {
		t.Fatalf("status command after a drain: exit %d\n%s%s", code, out, errOut)
	}

	if code, out, errOut := runBinary(t, "drain", "-undo", "-config", path); code != 0 || !strings.Contains(out, "undrained") {
		t.Fatalf("drain -undo: exit %d\n%s%s", code, out, errOut)
	}
	waitStatus(t, base+"/readyz", 200)
	p.stopOK(20*time.Second, "stop after undrain")
	p.waitLog("handover complete: every session closed, every file delivered, every cursor committed")
}
