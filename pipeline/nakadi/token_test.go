package nakadi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenSourceFollowsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	now := time.Unix(1000, 0)
	ts := &tokenSource{path: path, now: func() time.Time { return now }}
	if _, err := ts.get(); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("missing file: %v", err)
	}
	_ = os.WriteFile(path, []byte("secret-1\n"), 0o600)
	if tok, err := ts.get(); err != nil || tok != "secret-1" {
		t.Fatalf("get = %q, %v", tok, err)
	}
	_ = os.WriteFile(path, []byte("secret-22"), 0o600) // size changes
	if tok, _ := ts.get(); tok != "secret-1" {
		t.Fatalf("re-read before the check interval: %q", tok)
	}
	now = now.Add(tokenCheckEvery)
	if tok, _ := ts.get(); tok != "secret-22" {
		t.Fatalf("after change: %q", tok)
	}
	_ = os.WriteFile(path, []byte("secret-33"), 0o600) // same size, maybe same mtime
	if err := ts.refresh(); err != nil {
		t.Fatal(err)
	}
	if tok, _ := ts.get(); tok != "secret-33" {
		t.Fatalf("after refresh: %q", tok)
	}
	_ = os.WriteFile(path, []byte("  \n"), 0o600)
	if err := ts.refresh(); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("empty file: %v", err)
	}
}
