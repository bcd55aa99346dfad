package flatten

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// stepKind is what one step of a path does.
type stepKind uint8

const (
	stepKey   stepKind = iota // object member by key
	stepIndex                 // array element by index [N]
	stepEach                  // every array element [*]
)

type step struct {
	kind  stepKind
	hash  uint16 // stepKey: keyHash(key)
	index int    // stepIndex
	key   string // stepKey, decoded
}

func keyStep(key string) step {
	return step{kind: stepKey, key: key, hash: keyHash(key)}
}

// keyHash is a cheap summary of a key (its length and end bytes): the
// parser stores it in key nodes so that lookups skip most keys without
// comparing them.
func keyHash[S string | []byte](k S) uint16 {
	if len(k) == 0 {
		return 0
	}
	return uint16(len(k))*31 ^ uint16(k[0])<<8 ^ uint16(k[len(k)-1])
}

// Path is a parsed JSON path (docs/mapping.md): dotted object keys, [N] array
// indexes, [*] explodes, ["k"] keys in JSON string syntax. The zero Path is
// empty; it addresses nothing. A Path is immutable and safe to share.
type Path struct {
	steps []step
}

// PathError says why a path does not parse.
type PathError struct {
	Path   string
	Offset int // byte offset in Path of the problem
	Reason string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("%q is not a valid path: %s at byte %d", e.Path, e.Reason, e.Offset)
}

// maxIndex bounds [N] so that indexes fit in every int and in the tape.
const maxIndex = 1<<31 - 1

// ParsePath parses the path grammar of docs/mapping.md:
//
//	path    = first rest*
//	first   = key | quoted
//	rest    = "." key | quoted | "[" digits "]" | "[*]"
//	key     = one or more bytes other than . [ ] "
//	quoted  = "[" JSON-string "]"        e.g. ["a.b"], ["say \"hi\""]
//
// A path starts with a key because an event is an object; `metadata.eid` is
// an ordinary path. The error is a *PathError.
func ParsePath(s string) (Path, error) {
	if !utf8.ValidString(s) {
		return Path{}, &PathError{Path: s, Offset: invalidUTF8At(s), Reason: "invalid UTF-8"}
	}
	if s == "" {
		return Path{}, &PathError{Path: s, Reason: "empty path"}
	}
	var steps []step
	i := 0
	for i < len(s) {
		st, next, reason := parseStep(s, i, len(steps) == 0)
		if reason != "" {
			return Path{}, &PathError{Path: s, Offset: next, Reason: reason}
		}
		steps = append(steps, st)
		i = next
	}
	return Path{steps: steps}, nil
}

// parseStep parses the step at s[i]. On error, next is the offending offset.
func parseStep(s string, i int, first bool) (st step, next int, reason string) {
	switch {
	case s[i] == '[':
		return parseBracket(s, i, first)
	case first:
		return parseKey(s, i)
	case s[i] == '.':
		return parseKey(s, i+1)
	default:
		return st, i, "expected '.' or '['"
	}
}

func parseKey(s string, i int) (step, int, string) {
	j := i
	for j < len(s) && !strings.ContainsRune(".[]\"", rune(s[j])) {
		j++
	}
	if j == i {
		if j < len(s) && (s[j] == ']' || s[j] == '"') {
			return step{}, j, fmt.Sprintf("unexpected %q (write keys holding . [ ] \" as [\"...\"])", s[j])
		}
		return step{}, j, "empty key"
	}
	return keyStep(s[i:j]), j, ""
}

func parseBracket(s string, i int, first bool) (step, int, string) {
	switch {
	case i+1 < len(s) && s[i+1] == '*':
		if first {
			return step{}, i, "a path starts with a key (the event is an object)"
		}
		if i+2 >= len(s) || s[i+2] != ']' {
			return step{}, i + 2, "expected ']'"
		}
		return step{kind: stepEach}, i + 3, ""
	case i+1 < len(s) && s[i+1] == '"':
		return parseQuoted(s, i)
	case i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
		if first {
			return step{}, i, "a path starts with a key (the event is an object)"
		}
		return parseIndex(s, i)
	default:
		return step{}, i + 1, `expected *, a number or a "string" after '['`
	}
}

func parseIndex(s string, i int) (step, int, string) {
	j := i + 1
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	digits := s[i+1 : j]
	if len(digits) > 1 && digits[0] == '0' {
		return step{}, i + 1, "leading zero in index"
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n > maxIndex {
		return step{}, i + 1, "index too large"
	}
	if j >= len(s) || s[j] != ']' {
		return step{}, j, "expected ']'"
	}
	return step{kind: stepIndex, index: n}, j + 1, ""
}

func parseQuoted(s string, i int) (step, int, string) {
	end, esc, reason := scanString([]byte(s), i+1)
	if reason != "" {
		return step{}, end, reason
	}
	if end >= len(s) || s[end] != ']' {
		return step{}, end, "expected ']'"
	}
	key := s[i+2 : end-1]
	if esc {
		b, _ := appendUnescaped(nil, []byte(key))
		key = string(b)
	}
	return keyStep(key), end + 1, ""
}

func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return len(s)
}

// String prints the path back in canonical form: keys bare when they can be,
// else in brackets with minimal JSON string escaping. ParsePath(p.String())
// equals p.
func (p Path) String() string {
	var b []byte
	for i, st := range p.steps {
		switch st.kind {
		case stepEach:
			b = append(b, "[*]"...)
		case stepIndex:
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(st.index), 10)
			b = append(b, ']')
		case stepKey:
			if needsBrackets(st.key) {
				b = append(b, '[')
				b = appendQuoted(b, st.key)
				b = append(b, ']')
				continue
			}
			if i > 0 {
				b = append(b, '.')
			}
			b = append(b, st.key...)
		}
	}
	return string(b)
}

// Explodes reports whether p holds a [*] step.
func (p Path) Explodes() bool { return p.explodes() > 0 }

// explodes counts the [*] steps of p.
func (p Path) explodes() int {
	n := 0
	for _, st := range p.steps {
		if st.kind == stepEach {
			n++
		}
	}
	return n
}

// endsInEach reports whether the last step of p is [*].
func (p Path) endsInEach() bool {
	return len(p.steps) > 0 && p.steps[len(p.steps)-1].kind == stepEach
}

// explodePrefix returns the steps of p up to and including its last [*];
// nil when p does not explode.
func (p Path) explodePrefix() []step {
	for i := len(p.steps) - 1; i >= 0; i-- {
		if p.steps[i].kind == stepEach {
			return p.steps[:i+1]
		}
	}
	return nil
}

// hasPrefix reports whether steps begins with prefix.
func hasPrefix(steps, prefix []step) bool {
	if len(prefix) > len(steps) {
		return false
	}
	for i := range prefix {
		if steps[i] != prefix[i] {
			return false
		}
	}
	return true
}

// needsBrackets reports whether a key must be printed as ["key"]: when it is
// empty or holds . [ ] " or a control character.
func needsBrackets(key string) bool {
	return key == "" || strings.ContainsAny(key, ".[]\"") || strings.IndexFunc(key, isControl) >= 0
}
