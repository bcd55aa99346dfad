package flatten

import (
	"fmt"
	"math"
)

// Kind is the JSON kind of a Value.
type Kind uint8

// Kinds of values. KindMissing is an absent key, an index out of range or a
// step into a scalar; KindNull is JSON null (which columns treat as missing).
const (
	KindMissing Kind = iota
	KindNull
	KindBool
	KindNumber
	KindString
	KindObject
	KindArray
)

var kindNames = [...]string{"missing", "null", "bool", "number", "string", "object", "array"}

func (k Kind) String() string { return kindNames[k] }

// node is one value of the tape, in document order. An object is followed
// by its members as (key node, value subtree) pairs, an array by its element
// subtrees.
type node struct {
	kind Kind
	esc  bool   // a string or key holding backslash escapes
	hash uint16 // a key without escapes: keyHash of its bytes
	n    uint32 // members of an object, elements of an array
	// For strings and keys: the bytes between the quotes. For other values:
	// their JSON text.
	start, end uint32
	// The tape index just after this node's subtree; for a key, the index
	// of the next key of its object (or of the object's end).
	next uint32
}

// maxDepth is the nesting limit of encoding/json, so that both accept the
// same documents.
const maxDepth = 10000

// ParseError says why an event is not a valid JSON object.
type ParseError struct {
	Offset int    // byte offset of the problem; -1 when it is the whole event
	Reason string // e.g. "unexpected character 'x'", "invalid UTF-8"
}

func (e *ParseError) Error() string {
	if e.Offset < 0 {
		return e.Reason
	}
	return fmt.Sprintf("invalid JSON: %s at byte %d", e.Reason, e.Offset)
}

// Parser parses events into Docs. It reuses its memory from one event to the
// next, so steady-state parsing does not allocate. A Parser is not safe for
// concurrent use: keep one per goroutine.
type Parser struct {
	doc   Doc
	stack []uint32 // tape indexes of the open containers
}

// Parse validates the whole event and indexes it. The event must be one
// JSON object (RFC 8259, valid UTF-8, nesting depth at most 10000, optional
// surrounding whitespace); otherwise the error is a *ParseError. The Doc
// refers to event and is valid until the next call of Parse; the caller
// must not modify event meanwhile.
func (p *Parser) Parse(event []byte) (*Doc, error) {
	d := &p.doc
	d.shrink(len(event))
	if len(event) > presize {
		if n := countNodes(event); cap(d.tape) < n {
			d.tape = make([]node, 0, n) // once, at its size: growing it would hold about twice as much
		}
	}
	d.src, d.tape, d.used = event, d.tape[:0], cost{}
	if len(event) > math.MaxUint32-1 {
		return nil, &ParseError{Offset: -1, Reason: "event larger than 4 GiB"}
	}
	if off, reason := p.parse(event); reason != "" {
		d.src = nil
		return nil, &ParseError{Offset: off, Reason: reason}
	}
	if k := d.tape[0].kind; k != KindObject {
		d.src = nil
		return nil, &ParseError{Offset: -1, Reason: "not a JSON object: the event is " + article(k)}
	}
	return d, nil
}

// Buffers a Doc keeps from one event to the next up to these sizes; larger
// ones, grown for a large event, are dropped when a smaller event comes, so
// that one huge event does not hold memory for the parser's lifetime.
const (
	keepNodes = 4096     // tape nodes (20 bytes each)
	keepBytes = 64 << 10 // rendered fields, scratch
)

// Shrink drops the buffers a large event made the parser grow, for a
// caller that keeps the parser idle after one (Parse does it by itself
// when a smaller event comes). The last Doc is invalid afterwards.
func (p *Parser) Shrink() {
	p.doc.shrink(0)
	if cap(p.stack) > keepNodes {
		p.stack = nil
	}
}

// presize is the event size above which Parse counts the values first and
// makes the tape exactly that large.
const presize = 1 << 20

// countNodes is an upper bound of the tape nodes of event: the root, plus
// one per '{', '[', ',' and ':' outside strings (each value and key but the
// root follows exactly one of them).
func countNodes(event []byte) int {
	n := 1
	for i := 0; i < len(event); i++ {
		switch event[i] {
		case '{', '[', ',', ':':
			n++
		case '"':
			for i++; i < len(event) && event[i] != '"'; i++ {
				if event[i] == '\\' {
					i++
				}
			}
		}
	}
	return n
}

// shrink drops the buffers that are far larger than an event of n bytes
// needs: its tape has at most n nodes, its fields about 2n bytes.
func (d *Doc) shrink(n int) {
	if cap(d.tape) > max(keepNodes, n) {
		d.tape = nil
	}
	if cap(d.cache) > max(keepBytes, 2*n) {
		d.cache = nil
	}
	if cap(d.scratch) > max(keepBytes, 2*n) {
		d.scratch = nil
	}
}

func article(k Kind) string {
	if k == KindObject || k == KindArray {
		return "an " + k.String()
	}
	return "a " + k.String()
}

var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace[b[i]] {
		i++
	}
	return i
}

// ws skips whitespace at b[i]; the common case (none) is inlined.
func ws(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i
	}
	return skipSpace(b, i)
}

// parse fills the tape; it returns the offset and reason of the first error.
// It is the hot path of every event, hence one loop over local copies of
// the tape and the stack of open containers.
func (p *Parser) parse(b []byte) (off int, reason string) {
	tape, stack := p.doc.tape[:0], p.stack[:0]
	defer func() { p.doc.tape, p.stack = tape, stack }()
	i := ws(b, 0)
	for {
		// A value is expected at b[i].
		if i < len(b) && (b[i] == '{' || b[i] == '[') {
			if len(stack) >= maxDepth {
				return i, "exceeded max depth"
			}
			k, closer := KindObject, byte('}')
			if b[i] == '[' {
				k, closer = KindArray, ']'
			}
			stack = append(stack, uint32(len(tape)))
			tape = append(tape, node{kind: k, start: uint32(i)})
			if i = ws(b, i+1); i >= len(b) || b[i] != closer {
				tape[len(tape)-1].n = 1
				if k == KindObject {
					if tape, i, reason = key(b, i, tape); reason != "" {
						return i, reason
					}
				}
				continue
			}
			tape, stack = closeTop(tape, stack, i)
			i++
		} else {
			var n node
			if n, i, reason = scalar(b, i); reason != "" {
				return i, reason
			}
			n.next = uint32(len(tape) + 1)
			tape = append(tape, n)
			if len(stack) > 0 && tape[stack[len(stack)-1]].kind == KindObject {
				tape[len(tape)-2].next = uint32(len(tape)) // the member's key
			}
		}
		// After a value: close containers until one has another member.
		for {
			i = ws(b, i)
			if len(stack) == 0 {
				if i < len(b) {
					return i, unexpected(b, i, "after the top-level value")
				}
				return 0, ""
			}
			top := &tape[stack[len(stack)-1]]
			if i < len(b) && b[i] == ',' {
				top.n++
				if i = ws(b, i+1); top.kind == KindObject {
					if tape, i, reason = key(b, i, tape); reason != "" {
						return i, reason
					}
				}
				break
			}
			if i >= len(b) || b[i] != closerOf(top.kind) {
				return i, unexpected(b, i, "after a member")
			}
			tape, stack = closeTop(tape, stack, i)
			i++
		}
	}
}

func closerOf(k Kind) byte {
	if k == KindArray {
		return ']'
	}
	return '}'
}

// closeTop ends the innermost container at its closer b[i].
func closeTop(tape []node, stack []uint32, i int) ([]node, []uint32) {
	top := stack[len(stack)-1]
	n := &tape[top]
	n.end = uint32(i + 1)
	n.next = uint32(len(tape))
	stack = stack[:len(stack)-1]
	if len(stack) > 0 && tape[stack[len(stack)-1]].kind == KindObject {
		tape[top-1].next = uint32(len(tape)) // the member's key
	}
	return tape, stack
}

// key parses an object key at b[i] and its colon, appending the key node; it
// returns the offset of the member's value.
func key(b []byte, i int, tape []node) ([]node, int, string) {
	if i >= len(b) || b[i] != '"' {
		return tape, i, unexpected(b, i, "looking for an object key")
	}
	end, esc, reason := scanString(b, i)
	if reason != "" {
		return tape, end, reason
	}
	tape = append(tape, node{kind: KindString, esc: esc, hash: keyHash(b[i+1 : end-1]), start: uint32(i + 1), end: uint32(end - 1)})
	j := ws(b, end)
	if j >= len(b) || b[j] != ':' {
		return tape, j, unexpected(b, j, "after an object key")
	}
	return tape, ws(b, j+1), ""
}

// scalar parses the string, number or literal at b[i] (next is not set).
func scalar(b []byte, i int) (node, int, string) {
	if i >= len(b) {
		return node{}, i, "unexpected end of input"
	}
	switch c := b[i]; {
	case c == '"':
		end, esc, reason := scanString(b, i)
		return node{kind: KindString, esc: esc, start: uint32(i + 1), end: uint32(end - 1)}, end, reason
	case c == '-' || (c >= '0' && c <= '9'):
		end, reason := scanNumber(b, i)
		return node{kind: KindNumber, start: uint32(i), end: uint32(end)}, end, reason
	case c == 't' && hasWord(b, i, "true"):
		return node{kind: KindBool, start: uint32(i), end: uint32(i + 4)}, i + 4, ""
	case c == 'f' && hasWord(b, i, "false"):
		return node{kind: KindBool, start: uint32(i), end: uint32(i + 5)}, i + 5, ""
	case c == 'n' && hasWord(b, i, "null"):
		return node{kind: KindNull, start: uint32(i), end: uint32(i + 4)}, i + 4, ""
	}
	return node{}, i, unexpected(b, i, "looking for a value")
}

func hasWord(b []byte, i int, w string) bool {
	return len(b)-i >= len(w) && string(b[i:i+len(w)]) == w
}

func unexpected(b []byte, i int, where string) string {
	if i >= len(b) {
		return "unexpected end of input " + where
	}
	if c := b[i]; c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("unexpected character %q %s", c, where)
	}
	return fmt.Sprintf("unexpected byte 0x%02x %s", b[i], where)
}

// scanNumber validates the JSON number at b[i] and returns its end.
func scanNumber(b []byte, i int) (int, string) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return i, "invalid number: a digit must follow '-'"
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, "invalid number: a digit must follow '.'"
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, "invalid number: a digit must follow the exponent"
		}
		i = j
	}
	return i, ""
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
