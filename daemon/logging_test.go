package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Console logs written to a file or pipe carry no ANSI colour codes.
func TestConsoleLogsWithoutColourOutsideATerminal(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger("console", &buf)
	log.Info().Str("k", "v").Msg("hello")
	if strings.Contains(buf.String(), "\x1b[") {
		t.Fatalf("ANSI escape codes in a non-terminal log: %q", buf.String())
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatal("a regular file counts as a terminal")
	}
}

// Durations are logged as Go duration strings, not as bare numbers.
func TestDurationsLoggedAsStrings(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger("json", &buf)
	log.Info().Stringer("took", 1500*time.Millisecond).Msg("x")
	if !strings.Contains(buf.String(), `"took":"1.5s"`) {
		t.Fatalf("duration not a Go duration string: %s", buf.String())
	}
	// zerolog's Dur writes a bare number: no component may use it.
	dur := regexp.MustCompile(`\.Dur\(`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path != ".." && strings.HasPrefix(d.Name(), "."):
			return filepath.SkipDir // .git, .cache
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		src, err := os.ReadFile(path)
		if err == nil && dur.Match(src) {
			t.Errorf("%s logs a duration with zerolog's Dur (a bare number); use Stringer", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
