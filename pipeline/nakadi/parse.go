package nakadi

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrMalformedBatch is returned for a stream line that is not a batch.
var ErrMalformedBatch = errors.New("nakadi: malformed batch line")

// byte classes of the structural scanner.
const (
	clsPlain = iota
	clsQuote
	clsOpen
	clsClose
)

var (
	// structClass classifies bytes outside strings.
	structClass [256]uint8
	// stringStop marks the bytes that end a run inside a string.
	stringStop [256]bool
)

func init() {
	structClass['"'] = clsQuote
	structClass['{'], structClass['['] = clsOpen, clsOpen
	structClass['}'], structClass[']'] = clsClose, clsClose
	stringStop['"'], stringStop['\\'] = true, true
}

// span is a byte range [start, end) of a line.
type span struct{ start, end int }

// parser parses batch lines. It keeps scratch space and interned names
// between lines, so one parser serves one stream (it is not safe for
// concurrent use).
type parser struct {
	spans  []span
	stack  []byte
	intern map[string]string
}

// parse fills b's cursor and info from line and leaves the byte ranges of
// the events in p.spans (see fillEvents). Nothing in b refers to line.
func (p *parser) parse(line []byte, b *Batch) error {
	p.spans = p.spans[:0]
	sawCursor, err := p.object(line, b)
	if err != nil {
		return err
	}
	if !sawCursor {
		return fmt.Errorf("%w: no cursor", ErrMalformedBatch)
	}
	return nil
}

// fillEvents sets b.Events to the sub-slices of buf at the spans of the last
// parse; buf holds the same bytes as the parsed line.
func (p *parser) fillEvents(buf []byte, b *Batch) {
	b.Events = nil
	if len(p.spans) == 0 {
		return
	}
	b.Events = make([][]byte, len(p.spans))
	for k, s := range p.spans {
		b.Events[k] = buf[s.start:s.end:s.end]
	}
}

// parseLine parses one line into a new batch whose events are sub-slices of
// line.
func parseLine(line []byte) (*Batch, error) {
	var p parser
	b := &Batch{}
	if err := p.parse(line, b); err != nil {
		return nil, err
	}
	p.fillEvents(line, b)
	return b, nil
}

// object parses the top-level object: keys in any order, unknown keys
// skipped, the last of duplicate keys wins.
func (p *parser) object(line []byte, b *Batch) (sawCursor bool, err error) {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false, malformed(i, "expected '{'")
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return false, trailing(line, i+1)
	}
	for {
		var key []byte
		if key, i, err = p.key(line, i); err != nil {
			return false, err
		}
		switch string(key) {
		case "cursor":
			b.Cursor = Cursor{}
			i, err = p.cursor(line, i, &b.Cursor)
			sawCursor = true
		case "events":
			p.spans = p.spans[:0]
			i, err = p.events(line, i)
		case "info":
			b.Info = ""
			i, err = p.info(line, i, &b.Info)
		default:
			i, err = p.skipValue(line, i)
		}
		if err != nil {
			return false, err
		}
		var done bool
		if i, done, err = nextMember(line, i, '}', ""); err != nil || done {
			if err != nil {
				return false, err
			}
			return sawCursor, trailing(line, i)
		}
	}
}

// key reads `"name" :` at i and returns the (unescaped) name and the index
// of the value after the colon and whitespace.
func (p *parser) key(line []byte, i int) ([]byte, int, error) {
	if i >= len(line) || line[i] != '"' {
		return nil, i, malformed(i, "expected key")
	}
	end, esc, err := scanString(line, i)
	if err != nil {
		return nil, i, err
	}
	key := line[i+1 : end-1]
	if esc {
		s, err := unquote(line[i:end])
		if err != nil {
			return nil, i, err
		}
		key = []byte(s)
	}
	i = skipWS(line, end)
	if i >= len(line) || line[i] != ':' {
		return nil, i, malformed(i, "expected ':'")
	}
	return key, skipWS(line, i+1), nil
}

// cursor parses the cursor object at i.
func (p *parser) cursor(line []byte, i int, c *Cursor) (int, error) {
	if i >= len(line) || line[i] != '{' {
		return i, malformed(i, "cursor is not an object")
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return i + 1, nil
	}
	for {
		key, j, err := p.key(line, i)
		if err != nil {
			return j, err
		}
		var dst *string
		switch string(key) {
		case "partition":
			dst = &c.Partition
		case "offset":
			dst = &c.Offset
		case "event_type":
			dst = &c.EventType
		case "cursor_token":
			dst = &c.CursorToken
		}
		if dst == nil {
			i, err = p.skipValue(line, j)
		} else {
			i, err = p.stringField(line, j, dst, dst != &c.Offset && dst != &c.CursorToken)
		}
		if err != nil {
			return i, err
		}
		var done bool
		if i, done, err = nextMember(line, i, '}', " in cursor"); err != nil || done {
			return i, err
		}
	}
}

// stringField reads a JSON string (null means "") into dst. Names that
// repeat on every line (event type, partition) are interned.
func (p *parser) stringField(line []byte, i int, dst *string, intern bool) (int, error) {
	if end, ok := literal(line, i, "null"); ok {
		*dst = ""
		return end, nil
	}
	if i >= len(line) || line[i] != '"' {
		return i, malformed(i, "expected a string")
	}
	end, esc, err := scanString(line, i)
	if err != nil {
		return i, err
	}
	raw := line[i+1 : end-1]
	switch {
	case esc || !utf8.Valid(raw):
		*dst, err = unquote(line[i:end])
	case intern:
		*dst = p.internString(raw)
	default:
		*dst = string(raw)
	}
	return end, err
}

// internString returns an interned string equal to b (names repeat per line).
func (p *parser) internString(b []byte) string {
	if s, ok := p.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if p.intern == nil {
		p.intern = make(map[string]string)
	}
	if len(p.intern) < 4096 {
		p.intern[s] = s
	}
	return s
}

// events records the spans of the elements of the events array at i (null
// means no events).
func (p *parser) events(line []byte, i int) (int, error) {
	if end, ok := literal(line, i, "null"); ok {
		return end, nil
	}
	if i >= len(line) || line[i] != '[' {
		return i, malformed(i, "events is not an array")
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := p.skipValue(line, i)
		if err != nil {
			return end, err
		}
		p.spans = append(p.spans, span{i, end})
		var done bool
		if i, done, err = nextMember(line, end, ']', " in events"); err != nil || done {
			return i, err
		}
	}
}

// info reads info.debug; anything else in info is skipped.
func (p *parser) info(line []byte, i int, dst *string) (int, error) {
	if i >= len(line) || line[i] != '{' {
		return p.skipValue(line, i)
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return i + 1, nil
	}
	for {
		key, j, err := p.key(line, i)
		if err != nil {
			return j, err
		}
		if string(key) == "debug" && j < len(line) && line[j] == '"' {
			i, err = p.stringField(line, j, dst, false)
		} else {
			if string(key) == "debug" {
				*dst = ""
			}
			i, err = p.skipValue(line, j)
		}
		if err != nil {
			return i, err
		}
		var done bool
		if i, done, err = nextMember(line, i, '}', " in info"); err != nil || done {
			return i, err
		}
	}
}

// skipValue returns the end of the JSON value starting at i. Objects and
// arrays are checked for balanced brackets and terminated strings; scalars
// are not validated (events are validated by the pipeline's parser).
func (p *parser) skipValue(line []byte, i int) (int, error) {
	if i >= len(line) {
		return i, malformed(i, "expected a value")
	}
	switch structClass[line[i]] {
	case clsQuote:
		end, _, err := scanString(line, i)
		return end, err
	case clsOpen:
		return p.skipComposite(line, i)
	case clsClose:
		return i, malformed(i, "unexpected bracket")
	}
	j := i
	for j < len(line) && !scalarEnd(line[j]) {
		j++
	}
	if j == i {
		return i, malformed(i, "expected a value")
	}
	return j, nil
}

// scalarEnd reports whether c ends a number or literal.
func scalarEnd(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		structClass[c] != clsPlain
}

// skipComposite skips the object or array at i, matching bracket kinds.
func (p *parser) skipComposite(line []byte, i int) (int, error) {
	stack := p.stack[:0]
	n := len(line)
	for i < n {
		c := line[i]
		switch structClass[c] {
		case clsPlain:
			i++
			for i < n && structClass[line[i]] == clsPlain {
				i++
			}
			continue
		case clsQuote:
			end, _, err := scanString(line, i)
			if err != nil {
				return end, err
			}
			i = end
			continue
		case clsOpen:
			stack = append(stack, c+2) // '{'+2 == '}', '['+2 == ']'
		case clsClose:
			if len(stack) == 0 || stack[len(stack)-1] != c {
				p.stack = stack
				return i, malformed(i, "mismatched bracket")
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				p.stack = stack
				return i + 1, nil
			}
		}
		i++
	}
	p.stack = stack
	return i, malformed(i, "unterminated value")
}

// scanString returns the index after the closing quote of the string at i
// and whether it contains escapes. It skips 8 bytes at a time while none of
// them is a quote or a backslash.
func scanString(line []byte, i int) (end int, esc bool, err error) {
	n := len(line)
	j := i + 1
	for {
		for j+8 <= n && !quoteOrBackslash(binary.LittleEndian.Uint64(line[j:j+8])) {
			j += 8
		}
		for j < n && !stringStop[line[j]] {
			j++
		}
		if j >= n {
			return n, esc, malformed(i, "unterminated string")
		}
		if line[j] == '"' {
			return j + 1, esc, nil
		}
		esc = true
		j += 2 // the backslash and the escaped byte
	}
}

// SWAR constants: a byte of ones in every lane, and the lanes' high bits.
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// quoteOrBackslash reports whether any byte of v is '"' or '\\'.
func quoteOrBackslash(v uint64) bool {
	q, b := v^(lanes01*'"'), v^(lanes01*'\\')
	return ((q-lanes01)&^q|(b-lanes01)&^b)&lanes80 != 0
}

// unquote decodes a quoted JSON string with escapes or invalid UTF-8 the way
// encoding/json does (rare: names and offsets are plain ASCII).
func unquote(quoted []byte) (string, error) {
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "", fmt.Errorf("%w: bad string: %v", ErrMalformedBatch, err)
	}
	return s, nil
}

// literal reports whether the literal lit starts at i and ends there.
func literal(line []byte, i int, lit string) (int, bool) {
	end := i + len(lit)
	if end > len(line) || string(line[i:end]) != lit {
		return i, false
	}
	if end < len(line) && !scalarEnd(line[end]) {
		return i, false
	}
	return end, true
}

func skipWS(line []byte, i int) int {
	for i < len(line) {
		switch line[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// nextMember reads what follows a member of an object or an element of an
// array: ',' (more follow: i is the next one's start) or the closing byte
// (done: i is just past it).
func nextMember(line []byte, i int, closing byte, where string) (next int, done bool, err error) {
	i = skipWS(line, i)
	if i >= len(line) {
		return i, false, malformed(i, "unterminated"+cmp.Or(where, " object"))
	}
	switch line[i] {
	case ',':
		return skipWS(line, i+1), false, nil
	case closing:
		return i + 1, true, nil
	}
	return i, false, malformed(i, "expected ',' or '"+string(closing)+"'"+where)
}

// trailing checks that only whitespace follows the top-level object.
func trailing(line []byte, i int) error {
	if i = skipWS(line, i); i != len(line) {
		return malformed(i, "data after the batch object")
	}
	return nil
}

func malformed(at int, what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformedBatch, what, at)
}
