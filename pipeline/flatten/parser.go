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
	n    uint32 // members of an object, elements of an array
	// For strings and keys: the bytes between the quotes. For other values:
	// their JSON text.
	start, end uint32
	next       uint32 // tape index just after this node's subtree
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
	d.src, d.tape = event, d.tape[:0]
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

// parse fills the tape; it returns the offset and reason of the first error.
func (p *Parser) parse(b []byte) (int, string) {
	p.stack = p.stack[:0]
	i := skipSpace(b, 0)
	var reason string
	for {
		// A value is expected at b[i].
		if i < len(b) && (b[i] == '{' || b[i] == '[') {
			var open bool
			if i, open, reason = p.open(b, i); reason != "" {
				return i, reason
			}
			if open {
				continue
			}
		} else if i, reason = p.scalar(b, i); reason != "" {
			return i, reason
		}
		// After a value: close containers until one has another member.
		for more := false; !more; {
			i = skipSpace(b, i)
			if len(p.stack) == 0 {
				if i < len(b) {
					return i, unexpected(b, i, "after the top-level value")
				}
				return 0, ""
			}
			if more, i, reason = p.afterMember(b, i); reason != "" {
				return i, reason
			}
		}
	}
}

// scalar parses the string, number or literal at b[i].
func (p *Parser) scalar(b []byte, i int) (int, string) {
	if i >= len(b) {
		return i, "unexpected end of input"
	}
	switch c := b[i]; {
	case c == '"':
		end, esc, reason := scanString(b, i)
		if reason != "" {
			return end, reason
		}
		p.push(KindString, esc, i+1, end-1)
		return end, ""
	case c == '-' || (c >= '0' && c <= '9'):
		end, reason := scanNumber(b, i)
		if reason != "" {
			return end, reason
		}
		p.push(KindNumber, false, i, end)
		return end, ""
	}
	for _, lit := range [...]struct {
		text string
		kind Kind
	}{{"true", KindBool}, {"false", KindBool}, {"null", KindNull}} {
		if len(b)-i >= len(lit.text) && string(b[i:i+len(lit.text)]) == lit.text {
			p.push(lit.kind, false, i, i+len(lit.text))
			return i + len(lit.text), ""
		}
	}
	return i, unexpected(b, i, "looking for a value")
}

// push appends a node.
func (p *Parser) push(k Kind, esc bool, start, end int) {
	t := &p.doc.tape
	*t = append(*t, node{kind: k, esc: esc, start: uint32(start), end: uint32(end), next: uint32(len(*t) + 1)})
}

// open opens the container at b[i]. An empty container is closed at once
// (open = false); otherwise the parser is left before the value of its
// first member (open = true).
func (p *Parser) open(b []byte, i int) (next int, open bool, reason string) {
	if len(p.stack) >= maxDepth {
		return i, false, "exceeded max depth"
	}
	k, closer := KindObject, byte('}')
	if b[i] == '[' {
		k, closer = KindArray, ']'
	}
	p.stack = append(p.stack, uint32(len(p.doc.tape)))
	p.push(k, false, i, i)
	j := skipSpace(b, i+1)
	if j < len(b) && b[j] == closer {
		p.close(j)
		return j + 1, false, ""
	}
	next, reason = p.member(b, j)
	return next, true, reason
}

// member starts a member of the innermost container at b[i] (after
// whitespace): it counts it and, for an object, consumes the key and the
// colon. It returns the offset of the member's value.
func (p *Parser) member(b []byte, i int) (int, string) {
	top := &p.doc.tape[p.stack[len(p.stack)-1]]
	top.n++
	if top.kind == KindArray {
		return i, ""
	}
	if i >= len(b) || b[i] != '"' {
		return i, unexpected(b, i, "looking for an object key")
	}
	end, esc, reason := scanString(b, i)
	if reason != "" {
		return end, reason
	}
	p.push(KindString, esc, i+1, end-1)
	j := skipSpace(b, end)
	if j >= len(b) || b[j] != ':' {
		return j, unexpected(b, j, "after an object key")
	}
	return skipSpace(b, j+1), ""
}

// afterMember handles b[i] after a member's value: a comma starts the next
// member (more = true), the closer closes the container.
func (p *Parser) afterMember(b []byte, i int) (more bool, next int, reason string) {
	closer := byte('}')
	if p.doc.tape[p.stack[len(p.stack)-1]].kind == KindArray {
		closer = ']'
	}
	switch {
	case i < len(b) && b[i] == ',':
		next, reason = p.member(b, skipSpace(b, i+1))
		return true, next, reason
	case i < len(b) && b[i] == closer:
		p.close(i)
		return false, i + 1, ""
	}
	return false, i, unexpected(b, i, "after a member")
}

// close ends the innermost container at its closer b[i].
func (p *Parser) close(i int) {
	top := p.stack[len(p.stack)-1]
	p.stack = p.stack[:len(p.stack)-1]
	n := &p.doc.tape[top]
	n.end = uint32(i + 1)
	n.next = uint32(len(p.doc.tape))
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
