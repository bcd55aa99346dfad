package conf

import (
	"fmt"
	"strconv"
	"strings"

	"materializer/internal/redact"
)

// Problem is one thing wrong with a config file: the key it concerns (in
// TOML path syntax with indices, e.g. "event_types[1].session_gap"), the
// offending value in TOML syntax ("" when the key is missing) and what is
// wrong with it.
type Problem struct {
	Key   string
	Value string
	Msg   string
}

// String prints the problem with the userinfo of every URL in it masked
// (redact.Text): whatever key a URL with credentials was written to (a wrong
// type, a misplaced value, an unknown key, a syntax error), a problem never
// prints them.
func (p Problem) String() string {
	if p.Value == "" {
		return redact.Text(p.Key + ": " + p.Msg)
	}
	return redact.Text(p.Key + ": " + p.Value + " " + p.Msg)
}

// Problems is every problem found in one config file. It is the error Load,
// Parse and Validate return when the file is not usable.
type Problems []Problem

func (ps Problems) Error() string {
	if len(ps) == 1 {
		return "conf: " + ps[0].String()
	}
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("conf: %d problems: %s", len(ps), strings.Join(lines, "; "))
}

// covers reports whether a problem about key or a key above it (a table
// that did not decode) is recorded.
func (ps Problems) covers(key string) bool {
	for _, p := range ps {
		if p.Key == key || strings.HasPrefix(key, p.Key+".") || strings.HasPrefix(key, p.Key+"[") {
			return true
		}
	}
	return false
}

// quote renders a string value in TOML (and Go) basic-string syntax.
func quote(s string) string { return strconv.Quote(s) }

// problems collects Problems while validating.
type problems struct{ list Problems }

func (ps *problems) add(key, value, format string, args ...any) {
	ps.list = append(ps.list, Problem{Key: key, Value: value, Msg: fmt.Sprintf(format, args...)})
}

// bad records a problem with a string value.
func (ps *problems) bad(key, value, format string, args ...any) {
	ps.add(key, quote(value), format, args...)
}

// missing records a required key that is absent or empty.
func (ps *problems) missing(key string) { ps.add(key, "", "is required") }
