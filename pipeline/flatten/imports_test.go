package flatten

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pureImports are the only packages the non-test files of flatten may
// import: no os, net, syscall, time, Pebble, AWS, NATS or logging. io is
// allowed in ndjson.go only, for io.Reader and io.Writer.
var pureImports = map[string]bool{
	"bytes": true, "crypto/sha256": true, "encoding/binary": true, "encoding/hex": true, "errors": true, "fmt": true, "math": true, "math/bits": true, "slices": true, "strconv": true,
	"strings": true, "unicode/utf8": true, "unicode/utf16": true,
}

func TestPureImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if pureImports[path] || (path == "io" && name == "ndjson.go") {
				continue
			}
			t.Errorf("%s imports %q: package flatten must stay pure (no I/O)", name, path)
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d files", checked)
	}
}
