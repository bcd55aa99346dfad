package conf

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"

	"github.com/BurntSushi/toml"
)

// Mode says which command a config is validated for.
type Mode int

const (
	// ForRun is the full check: everything `materializer run` needs.
	ForRun Mode = iota
	// ForDemo allows what `materializer demo` fills in itself: nakadi.url
	// (the demo starts an embedded Nakadi emulator).
	ForDemo
	// ForLoad is what `materializer load` needs: [load], [notify] and the
	// event types, but no data dir and no Nakadi.
	ForLoad
)

// ErrRead is wrapped by Load when the file cannot be read.
var ErrRead = errors.New("conf: cannot read config file")

// Load reads, decodes and validates the file at path. The error is either a
// one-line read error wrapping ErrRead, or Problems listing every problem.
func Load(path string, mode Mode) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRead, pathError(err))
	}
	return parse(data, mode, filepath.Dir(path))
}

// pathError drops the "open" verb from *os.PathError for a shorter message.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// Parse decodes data on top of Default (strictly: unknown keys and wrong
// types are problems), applies event-type defaults and validates. It returns
// the config together with Problems when anything is wrong, so a caller can
// still inspect what was understood.
func Parse(data []byte, mode Mode) (*Config, error) { return parse(data, mode, ".") }

// parse is Parse with relative include patterns resolved in dir.
func parse(data []byte, mode Mode, dir string) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, Problems{syntaxProblem(err)}
	}
	cfg := Default()
	var ps problems
	decodeTable(&ps, "", raw, reflect.ValueOf(&cfg).Elem())
	cfg.readIncludes(&ps, dir)
	cfg.applyEventTypeDefaults()
	for _, p := range cfg.validate(mode) {
		if !ps.list.covers(p.Key) { // a key that did not decode is reported once
			ps.list = append(ps.list, p)
		}
	}
	if len(ps.list) > 0 {
		return &cfg, ps.list
	}
	return &cfg, nil
}

func syntaxProblem(err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Problem{Key: fmt.Sprintf("line %d", pe.Position.Line), Msg: "TOML syntax: " + pe.Message}
	}
	return Problem{Key: "file", Msg: "TOML syntax: " + err.Error()}
}

// tomlSetter is implemented by value types that decode themselves
// (Duration, ByteSize). An error means the TOML type is wrong.
type tomlSetter interface{ setTOML(v any) error }

// decodeTable sets the fields of struct dst from the TOML table src,
// recording unknown keys and wrong types as problems under prefix.
func decodeTable(ps *problems, prefix string, src map[string]any, dst reflect.Value) {
	fields := tomlFields(dst.Type())
	for _, name := range sortedKeys(src) {
		i, ok := fields[name]
		if !ok {
			ps.add(join(prefix, name), "", "unknown key%s", suggest(name, fields))
			continue
		}
		decodeValue(ps, join(prefix, name), src[name], dst.Field(i))
	}
}

func decodeValue(ps *problems, key string, v any, dst reflect.Value) {
	if s, ok := dst.Addr().Interface().(tomlSetter); ok {
		if err := s.setTOML(v); err != nil {
			ps.add(key, render(v), "%s", err)
		}
		return
	}
	switch dst.Kind() {
	case reflect.String:
		decodeString(ps, key, v, dst)
	case reflect.Bool:
		if b, ok := v.(bool); ok {
			dst.SetBool(b)
		} else {
			ps.add(key, render(v), "must be true or false")
		}
	case reflect.Int:
		decodeInt(ps, key, v, dst)
	case reflect.Struct:
		if t, ok := v.(map[string]any); ok {
			decodeTable(ps, key, t, dst)
		} else {
			ps.add(key, render(v), "must be a table")
		}
	case reflect.Slice:
		decodeSlice(ps, key, v, dst)
	default:
		panic("conf: unsupported field kind " + dst.Kind().String())
	}
}

func decodeString(ps *problems, key string, v any, dst reflect.Value) {
	if s, ok := v.(string); ok {
		dst.SetString(s)
		return
	}
	ps.add(key, render(v), "must be a string")
}

func decodeInt(ps *problems, key string, v any, dst reflect.Value) {
	n, ok := v.(int64)
	if !ok {
		ps.add(key, render(v), "must be an integer")
		return
	}
	if n < math.MinInt || n > math.MaxInt {
		ps.add(key, render(v), "is out of range")
		return
	}
	dst.SetInt(n)
}

func decodeSlice(ps *problems, key string, v any, dst reflect.Value) {
	items, ok := asList(v)
	elem := dst.Type().Elem()
	if !ok {
		ps.add(key, render(v), "must be an array%s", ofWhat(elem))
		return
	}
	out := reflect.MakeSlice(dst.Type(), len(items), len(items))
	for i, item := range items {
		decodeValue(ps, fmt.Sprintf("%s[%d]", key, i), item, out.Index(i))
	}
	dst.Set(out)
}

func ofWhat(elem reflect.Type) string {
	if elem.Kind() == reflect.Struct {
		return " of tables"
	}
	return " of " + elem.Kind().String() + "s"
}

// asList accepts both shapes the TOML decoder produces for arrays.
func asList(v any) ([]any, bool) {
	switch v := v.(type) {
	case []any:
		return v, true
	case []map[string]any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = v[i]
		}
		return out, true
	}
	return nil, false
}

// tomlFields maps each toml tag of struct type t to its field index.
func tomlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" {
			m[tag] = i
		}
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// render shows a decoded TOML value in TOML syntax for a problem message.
func render(v any) string {
	switch v := v.(type) {
	case string:
		return quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case map[string]any:
		return "{...}"
	case []any, []map[string]any:
		return "[...]"
	}
	return fmt.Sprint(v)
}

// suggest returns ` (did you mean "x"?)` for a known key within edit
// distance 2 of name, or "".
func suggest(name string, fields map[string]int) string {
	best, bestD := "", 3
	for k := range fields {
		if d := editDistance(name, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
