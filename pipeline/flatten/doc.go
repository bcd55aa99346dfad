package flatten

import "unicode/utf8"

// Doc is a parsed event: the event's bytes and an index (tape) of its
// values. It belongs to the Parser that made it.
type Doc struct {
	src     []byte
	tape    []node
	cols    []colState // per column, while rows are written
	cache   []byte     // fields rendered once per element (colState)
	scratch []byte     // typed values while validating
	used    cost       // rows and bytes appended by AppendRows since Parse (the event's limits)
}

// Raw returns the event's bytes as given to Parse.
func (d *Doc) Raw() []byte { return d.src }

// Value is one value of a Doc, or a missing one. It is valid as long as its
// Doc is.
type Value struct {
	d *Doc
	i int32 // tape index; -1 when missing
}

const missing = -1

// Root returns the event object itself.
func (d *Doc) Root() Value { return Value{d, 0} }

// Lookup returns the value at p, KindMissing when there is none. A [*] step
// finds nothing (exploding is the Mapping's job); use paths without [*].
// Duplicate keys: the last one wins. Lookup does not allocate.
func (d *Doc) Lookup(p Path) Value {
	return Value{d, d.find(0, p.steps)}
}

// find follows steps from tape node i; it returns the node found or missing.
func (d *Doc) find(i int32, steps []step) int32 {
	for s := range steps {
		if i < 0 {
			return missing
		}
		st := &steps[s]
		switch st.kind {
		case stepKey:
			i = d.member(i, st)
		case stepIndex:
			i = d.element(i, st.index)
		default:
			return missing
		}
	}
	return i
}

// member returns the value of the last member of object i with the key, or
// missing. Every member is looked at, since the last duplicate wins; key
// nodes link to the next key and carry a hash, so most are skipped cheaply.
func (d *Doc) member(i int32, st *step) int32 {
	tape := d.tape
	if tape[i].kind != KindObject {
		return missing
	}
	found := int32(missing)
	for j, end := uint32(i+1), tape[i].next; j < end; j = tape[j].next {
		k := &tape[j]
		switch {
		case k.esc:
			if decodedEqual(d.src[k.start:k.end], st.key) {
				found = int32(j + 1)
			}
		case k.hash == st.hash && string(d.src[k.start:k.end]) == st.key:
			found = int32(j + 1)
		}
	}
	return found
}

// element returns element idx of array i, or missing.
func (d *Doc) element(i int32, idx int) int32 {
	n := &d.tape[i]
	if n.kind != KindArray || idx >= int(n.n) {
		return missing
	}
	j := i + 1
	for range idx {
		j = int32(d.tape[j].next)
	}
	return j
}

// decodedEqual reports whether a validated JSON string body with escapes
// decodes to key.
func decodedEqual(body []byte, key string) bool {
	i, k := 0, 0
	for i < len(body) {
		if body[i] != '\\' {
			if k >= len(key) || body[i] != key[k] {
				return false
			}
			i, k = i+1, k+1
			continue
		}
		var r rune
		r, i = unescapeAt(body, i)
		var buf [utf8.UTFMax]byte
		enc := utf8.AppendRune(buf[:0], r)
		if len(key)-k < len(enc) || key[k:k+len(enc)] != string(enc) {
			return false
		}
		k += len(enc)
	}
	return k == len(key)
}

// Kind returns the value's JSON kind.
func (v Value) Kind() Kind {
	if v.i < 0 {
		return KindMissing
	}
	return v.d.tape[v.i].kind
}

// IsMissing reports whether the value is missing or JSON null: what a
// column renders as the null marker.
func (v Value) IsMissing() bool {
	return v.i < 0 || v.d.tape[v.i].kind == KindNull
}

// Raw returns the value's JSON text as it appears in the event (for a
// string, with its quotes and escapes); nil when missing. The caller must
// not modify it.
func (v Value) Raw() []byte {
	if v.i < 0 {
		return nil
	}
	n := &v.d.tape[v.i]
	if n.kind == KindString {
		return v.d.src[n.start-1 : n.end+1]
	}
	return v.d.src[n.start:n.end]
}

// Bool returns the value of a JSON bool (false for other kinds).
func (v Value) Bool() bool {
	return v.Kind() == KindBool && v.d.src[v.d.tape[v.i].start] == 't'
}

// Len returns the number of members of an object or elements of an array.
func (v Value) Len() int {
	if k := v.Kind(); k != KindObject && k != KindArray {
		return 0
	}
	return int(v.d.tape[v.i].n)
}

// AppendText appends the value as text: a string decoded (unescaped UTF-8),
// a number's literal text, true or false, an object or array as compact
// JSON; nothing for null and missing.
func (v Value) AppendText(dst []byte) []byte {
	switch v.Kind() {
	case KindMissing, KindNull:
		return dst
	case KindString:
		n := &v.d.tape[v.i]
		body := v.d.src[n.start:n.end]
		if !n.esc {
			return append(dst, body...)
		}
		dst, _ = appendUnescaped(dst, body)
		return dst
	case KindObject, KindArray:
		return v.AppendJSON(dst)
	}
	return append(dst, v.Raw()...)
}

// Text returns AppendText as a string (it allocates).
func (v Value) Text() string { return string(v.AppendText(nil)) }

// AppendJSON appends the value as compact JSON (docs/mapping.md): keys in input
// order, numbers with their input text, no whitespace, minimal escaping.
// Of duplicate keys the first position is kept with the last value, as
// JavaScript's JSON.parse then JSON.stringify would. Missing appends nothing.
func (v Value) AppendJSON(dst []byte) []byte {
	if v.i < 0 {
		return dst
	}
	return v.d.appendJSON(dst, v.i)
}

func (d *Doc) appendJSON(dst []byte, i int32) []byte {
	n := &d.tape[i]
	switch n.kind {
	case KindString:
		return d.appendString(dst, n)
	case KindArray:
		dst = append(dst, '[')
		j := i + 1
		for e := range n.n {
			if e > 0 {
				dst = append(dst, ',')
			}
			dst = d.appendJSON(dst, j)
			j = int32(d.tape[j].next)
		}
		return append(dst, ']')
	case KindObject:
		return d.appendObject(dst, i)
	}
	return append(dst, d.src[n.start:n.end]...)
}

// appendString appends a string node as a JSON string with minimal escaping.
func (d *Doc) appendString(dst []byte, n *node) []byte {
	body := d.src[n.start:n.end]
	if !n.esc {
		// Valid input without escapes holds nothing to escape.
		dst = append(dst, '"')
		dst = append(dst, body...)
		return append(dst, '"')
	}
	// Decode into dst past its end, then escape that text back into dst.
	start := len(dst)
	dst, _ = appendUnescaped(dst, body)
	decoded := len(dst) - start
	dst = append(dst, '"')
	dst = appendEscapedFrom(dst, start, decoded)
	dst = append(dst, '"')
	return append(dst[:start], dst[start+decoded:]...)
}

// appendEscapedFrom appends the JSON escaping of dst[start:start+n]. The
// source is read by index because appending may move dst.
func appendEscapedFrom(dst []byte, start, n int) []byte {
	for i := start; i < start+n; {
		j := i
		for j < start+n && dst[j] >= 0x20 && dst[j] != '"' && dst[j] != '\\' {
			j++
		}
		dst = append(dst, dst[i:j]...)
		if j == start+n {
			break
		}
		dst = appendEscaped(dst, dst[j:j+1])
		i = j + 1
	}
	return dst
}

// appendObject appends object i; see AppendJSON for duplicate keys.
func (d *Doc) appendObject(dst []byte, i int32) []byte {
	if d.tape[i].n > smallObject {
		return d.appendLargeObject(dst, i)
	}
	dst = append(dst, '{')
	end := int32(d.tape[i].next)
	first := true
	for k := i + 1; k < end; k = int32(d.tape[k+1].next) {
		if d.keyBefore(i+1, k) {
			continue // written at its first position already
		}
		last := k + 1
		for o := int32(d.tape[k+1].next); o < end; o = int32(d.tape[o+1].next) {
			if d.keysEqual(k, o) {
				last = o + 1
			}
		}
		dst = d.appendMember(dst, k, last, first)
		first = false
	}
	return append(dst, '}')
}

// smallObject is the member count up to which duplicate keys are found by
// comparing every pair instead of through a map.
const smallObject = 32

// keyBefore reports whether a member from key node `from` up to key node k
// (excluded) has k's key.
func (d *Doc) keyBefore(from, k int32) bool {
	for o := from; o < k; o = int32(d.tape[o+1].next) {
		if d.keysEqual(o, k) {
			return true
		}
	}
	return false
}

func (d *Doc) appendMember(dst []byte, key, value int32, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = d.appendString(dst, &d.tape[key])
	dst = append(dst, ':')
	return d.appendJSON(dst, value)
}

// appendLargeObject is appendObject for many members: it maps each decoded
// key to its last value (this allocates).
func (d *Doc) appendLargeObject(dst []byte, i int32) []byte {
	end := int32(d.tape[i].next)
	last := make(map[string]int32, d.tape[i].n)
	for k := i + 1; k < end; k = int32(d.tape[k+1].next) {
		last[d.keyText(k)] = k + 1
	}
	dst = append(dst, '{')
	first := true
	for k := i + 1; k < end; k = int32(d.tape[k+1].next) {
		key := d.keyText(k)
		v, ok := last[key]
		if !ok {
			continue // written at its first position already
		}
		delete(last, key)
		dst = d.appendMember(dst, k, v, first)
		first = false
	}
	return append(dst, '}')
}

func (d *Doc) keyText(k int32) string {
	return Value{d, k}.Text()
}

// keysEqual reports whether key nodes a and b decode to the same text.
func (d *Doc) keysEqual(a, b int32) bool {
	na, nb := &d.tape[a], &d.tape[b]
	x, y := d.src[na.start:na.end], d.src[nb.start:nb.end]
	if !na.esc && !nb.esc {
		return string(x) == string(y)
	}
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		var rx, ry rune
		rx, i = nextRune(x, i)
		ry, j = nextRune(y, j)
		if rx != ry {
			return false
		}
	}
	return i == len(x) && j == len(y)
}

// nextRune decodes the rune at body[i] of a validated JSON string body,
// escapes included, and returns the index after it.
func nextRune(body []byte, i int) (rune, int) {
	switch c := body[i]; {
	case c == '\\':
		return unescapeAt(body, i)
	case c < utf8.RuneSelf:
		return rune(c), i + 1
	}
	r, n := decodeRune(body, i)
	return r, i + n
}
