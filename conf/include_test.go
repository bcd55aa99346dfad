package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const includedType = `
[[event_types]]
name          = %q
partition_key = ["id"]
ordering_key  = "version"
ordering      = "number"
session_gap   = %q
session_max   = "1h"
  [[event_types.tables]]
  name    = "t"
  columns = [{ name = "id", path = "id", type = "int" }]
`

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Event types may come from included files, found by glob patterns
// relative to the main file, in path order; their problems name the file
// and the key in it.
func TestIncludeAddsEventTypesAndNamesFilesInProblems(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "materializer.toml")
	writeFile(t, main, `include = ["types.d/*.toml"]`+"\n"+string(edited(t, nil)))
	writeFile(t, filepath.Join(dir, "types.d", "b.toml"), fmt.Sprintf(includedType, "b.one", "1m")+fmt.Sprintf(includedType, "b.two", "1m"))
	writeFile(t, filepath.Join(dir, "types.d", "a.toml"), fmt.Sprintf(includedType, "a.one", "1m"))
	writeFile(t, filepath.Join(dir, "types.d", "ignored.txt"), "not toml")
	cfg, err := Load(main, ForRun)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, et := range cfg.EventTypes {
		names = append(names, et.Name)
	}
	if got := strings.Join(names, " "); !strings.HasSuffix(got, " a.one b.one b.two") {
		t.Fatalf("event types %q: want the main file's, then a.toml's, then b.toml's", got)
	}

	bad := filepath.Join(dir, "types.d", "c.toml")
	writeFile(t, bad, "[daemon]\nlog_level = \"info\"\n"+fmt.Sprintf(includedType, "c.one", "0s")+fmt.Sprintf(includedType, "a.one", "1m"))
	_, err = Load(main, ForRun)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want problems, got %v", err)
	}
	want := []string{
		bad + ": daemon: is not allowed in an included file",
		bad + `: event_types[0].session_gap: "0s" must be > 0`,
		bad + `: event_types[1].name: "a.one" is the name of ` + filepath.Join(dir, "types.d", "a.toml") + ": event_types[0] already",
	}
	text := ps.Error()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("problems lack %q:\n%s", w, strings.ReplaceAll(text, "; ", "\n"))
		}
	}
}
