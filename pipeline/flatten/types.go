package flatten

import "unicode/utf8"

// appendTyped appends the field text of the present (not missing, not null)
// value node i for typ. On rejection it returns dst unchanged and a reason.
// When dry is set, string and json values (which only reject for U+0000)
// are checked without being written. A value that would expand beyond
// the event's own size (a decimal's exponent) is measured first: longer
// than room bytes, it is not written and the reason is
// overRoom.
func (d *Doc) appendTyped(dst []byte, i int32, typ Type, dry bool, room int) ([]byte, string) {
	n := &d.tape[i]
	switch typ {
	case TypeString:
		return d.appendStringValue(dst, i, dry)
	case TypeJSON:
		if d.holdsNUL(i) {
			return dst, d.describe(i) + nulReason
		}
		if dry {
			return dst, ""
		}
		return d.appendJSON(dst, i), ""
	case TypeInt:
		if n.kind == KindNumber {
			return appendInt(dst, d.src[n.start:n.end], d, i)
		}
		return dst, d.describe(i) + " is not an int"
	case TypeBool:
		if n.kind == KindBool {
			return append(dst, d.src[n.start:n.end]...), ""
		}
		return dst, d.describe(i) + " is not a bool"
	case TypeDecimal:
		return d.appendDecimal(dst, i, room)
	case TypeTimestamp:
		return d.appendTimestampValue(dst, i)
	}
	panic("flatten: unknown type " + string(typ)) // Compile rejects unknown types
}

const nulReason = " holds U+0000, which SQL text columns cannot store"

// overRoom is the reason of a value longer than the room a limit leaves; it
// becomes a *LimitError, never a RejectError.
const overRoom = "\x00over the limit"

func (d *Doc) appendStringValue(dst []byte, i int32, dry bool) ([]byte, string) {
	n := &d.tape[i]
	switch n.kind {
	case KindString:
		body := d.src[n.start:n.end]
		if !n.esc {
			if dry {
				return dst, ""
			}
			return append(dst, body...), ""
		}
		start := len(dst)
		out, nul := appendUnescaped(dst, body)
		if nul {
			return out[:start], d.describe(i) + nulReason
		}
		if dry {
			return out[:start], ""
		}
		return out, ""
	case KindObject, KindArray:
		if d.holdsNUL(i) {
			return dst, d.describe(i) + nulReason
		}
		if dry {
			return dst, ""
		}
		return d.appendJSON(dst, i), ""
	}
	return append(dst, d.src[n.start:n.end]...), "" // number, bool: JSON text
}

// holdsNUL reports whether a string in the subtree of node i (keys included)
// decodes to text holding U+0000.
func (d *Doc) holdsNUL(i int32) bool {
	for j := i; j < int32(d.tape[i].next); j++ {
		if n := &d.tape[j]; n.esc && escapedNUL(d.src[n.start:n.end]) {
			return true
		}
	}
	return false
}

// appendInt appends a JSON integer within int64; -0 is written 0.
func appendInt(dst, raw []byte, d *Doc, i int32) ([]byte, string) {
	digits := raw
	if raw[0] == '-' {
		digits = raw[1:]
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return dst, d.describe(i) + " is not an int"
		}
	}
	limit := "9223372036854775807"
	if raw[0] == '-' {
		limit = "9223372036854775808"
	}
	if len(digits) > len(limit) || (len(digits) == len(limit) && string(digits) > limit) {
		return dst, d.describe(i) + " is out of the int range (64 bits)"
	}
	if string(raw) == "-0" {
		return append(dst, '0'), ""
	}
	return append(dst, raw...), ""
}

func (d *Doc) appendDecimal(dst []byte, i int32, room int) ([]byte, string) {
	n := &d.tape[i]
	var reason string
	switch n.kind {
	case KindNumber:
		dst, reason = appendDecimalNumber(dst, d.src[n.start:n.end], room)
		if reason == overRoom {
			return dst, reason
		}
	case KindString:
		start := len(dst)
		dst = d.appendStringText(dst, n)
		if reason = checkDecimalLiteral(dst[start:]); reason != "" {
			dst = dst[:start]
		}
	default:
		reason = "not a decimal"
	}
	if reason != "" {
		return dst, d.describe(i) + " is " + reason
	}
	return dst, ""
}

func (d *Doc) appendTimestampValue(dst []byte, i int32) ([]byte, string) {
	n := &d.tape[i]
	if n.kind != KindString {
		return dst, d.describe(i) + " is not a timestamp (an RFC 3339 string)"
	}
	text := d.src[n.start:n.end]
	if n.esc {
		text, _ = appendUnescaped(nil, text) // rare: allocates
	}
	out, reason := appendTimestamp(dst, text)
	if reason != "" {
		return dst, d.describe(i) + " is not a timestamp: " + reason
	}
	return out, ""
}

// appendStringText appends the decoded text of string node n.
func (d *Doc) appendStringText(dst []byte, n *node) []byte {
	body := d.src[n.start:n.end]
	if !n.esc {
		return append(dst, body...)
	}
	dst, _ = appendUnescaped(dst, body)
	return dst
}

// maxDescribe bounds the value quoted in a rejection reason.
const maxDescribe = 64

// describe renders node i for a rejection reason: its compact JSON (so a
// string shows its quotes), cut at maxDescribe bytes. A long value is cut
// from its input text instead, so as not to render it whole.
func (d *Doc) describe(i int32) string {
	raw := Value{d, i}.Raw()
	var b []byte
	if len(raw) > 4*maxDescribe {
		b = raw
	} else {
		b = d.appendJSON(make([]byte, 0, maxDescribe), i)
	}
	if len(b) <= maxDescribe {
		return string(b)
	}
	cut := maxDescribe
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]) + "…"
}
