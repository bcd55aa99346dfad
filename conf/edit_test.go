package conf

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/BurntSushi/toml"
)

// deleteKey as an edit value removes the key.
const deleteKey = "<delete>"

// edited returns testdata/base.toml with each key (a path like
// "event_types[0].tables[1].columns[2].path") set to the TOML literal value,
// or removed when the value is deleteKey.
func edited(t *testing.T, edits map[string]string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/base.toml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		t.Fatal(err)
	}
	for key, lit := range edits {
		setKey(t, doc, key, lit)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var keyStep = regexp.MustCompile(`([a-z_]+)((?:\[\d+\])*)\.?`)
var indexStep = regexp.MustCompile(`\[(\d+)\]`)

func setKey(t *testing.T, doc map[string]any, key, lit string) {
	t.Helper()
	steps := keyStep.FindAllStringSubmatch(key, -1)
	table := doc
	for n, st := range steps {
		name, idx := st[1], indexStep.FindAllStringSubmatch(st[2], -1)
		if n == len(steps)-1 && len(idx) == 0 {
			setLeaf(t, table, name, lit)
			return
		}
		var cur any = table[name]
		if cur == nil {
			cur = map[string]any{}
			table[name] = cur
		}
		for _, i := range idx {
			n, _ := strconv.Atoi(i[1])
			cur = listOf(t, cur)[n]
		}
		table = cur.(map[string]any)
	}
}

func listOf(t *testing.T, v any) []any {
	list, ok := asList(v)
	if !ok {
		t.Fatalf("not a list: %T", v)
	}
	return list
}

func setLeaf(t *testing.T, table map[string]any, name, lit string) {
	t.Helper()
	if lit == deleteKey {
		delete(table, name)
		return
	}
	var v map[string]any
	if _, err := toml.Decode("v = "+lit, &v); err != nil {
		t.Fatalf("bad literal %s: %v", lit, err)
	}
	table[name] = v["v"]
}

// problemsOf parses data for mode and returns its problems.
func problemsOf(t *testing.T, data []byte, mode Mode) Problems {
	t.Helper()
	_, err := Parse(data, mode)
	if err == nil {
		return nil
	}
	ps, ok := err.(Problems)
	if !ok {
		t.Fatalf("Parse error is %T, want Problems: %v", err, err)
	}
	return ps
}
