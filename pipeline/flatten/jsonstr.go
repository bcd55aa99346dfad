package flatten

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// strPlain marks the bytes a JSON string may hold without escaping or UTF-8
// decoding: printable ASCII except '"' and '\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hexVal is the value of a hexadecimal digit, -1 for other bytes.
var hexVal = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = int8(c - 'a' + 10)
		t[c-'a'+'A'] = int8(c - 'a' + 10)
	}
	return t
}()

// scanString validates the JSON string whose opening quote is at b[start]. It
// returns the index just past the closing quote and whether the string holds
// backslash escapes; on error, the index of the offending byte and a reason.
func scanString(b []byte, start int) (end int, esc bool, reason string) {
	i := start + 1
	for {
		i = skipPlain(b, i)
		if i >= len(b) {
			return i, esc, "unterminated string"
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc, ""
		case c == '\\':
			esc = true
			n := escapeLen(b, i)
			if n == 0 {
				return i, esc, "invalid escape in string"
			}
			i += n
		case c < 0x20:
			return i, esc, "control character in string"
		default:
			r, size := decodeRune(b, i)
			if r == utf8.RuneError && size <= 1 {
				return i, esc, reasonUTF8
			}
			i += size
		}
	}
}

// reasonUTF8 is the ParseError reason of a string holding invalid UTF-8.
const reasonUTF8 = "invalid UTF-8"

// skipPlain returns the index of the first byte at or after b[i] that is
// not plain (see strPlain), looking at eight bytes at a time.
func skipPlain(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (ones * '"')
		bs := x ^ (ones * '\\')
		// The high bit of a byte is set when it is < 0x20, '"', '\' or
		// >= 0x80. Borrows only run upwards from such a byte, so the
		// lowest flagged byte is the first one that is not plain.
		if m := ((x - ones*0x20) | (q - ones) | (bs - ones) | x) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(b) && strPlain[b[i]] {
		i++
	}
	return i
}

// escapeLen returns the length of the valid escape sequence at b[i] (which is
// a backslash), or 0 when it is not valid.
func escapeLen(b []byte, i int) int {
	if i+1 >= len(b) {
		return 0
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if i+6 <= len(b) && hex4(b, i+2) >= 0 {
			return 6
		}
	}
	return 0
}

// hex4 decodes the four hexadecimal digits at b[i:], or returns -1.
func hex4(b []byte, i int) rune {
	if i+4 > len(b) {
		return -1
	}
	var r rune
	for j := i; j < i+4; j++ {
		v := hexVal[b[j]]
		if v < 0 {
			return -1
		}
		r = r<<4 | rune(v)
	}
	return r
}

// decodeRune validates the UTF-8 sequence at b[i] (a byte >= 0x80) and
// returns its rune and length, or (utf8.RuneError, 1) when it is invalid:
// overlong forms, surrogates and values above U+10FFFF are invalid, as in
// package utf8.
func decodeRune(b []byte, i int) (rune, int) {
	c := b[i]
	var n int
	var lo, hi byte = 0x80, 0xBF
	switch {
	case c >= 0xC2 && c <= 0xDF:
		n = 2
	case c == 0xE0:
		n, lo = 3, 0xA0
	case c == 0xED:
		n, hi = 3, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		n = 3
	case c == 0xF0:
		n, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		n = 4
	case c == 0xF4:
		n, hi = 4, 0x8F
	default:
		return utf8.RuneError, 1
	}
	if i+n > len(b) || b[i+1] < lo || b[i+1] > hi {
		return utf8.RuneError, 1
	}
	r := rune(c) & (0x7F >> n)
	r = r<<6 | rune(b[i+1]&0x3F)
	for j := i + 2; j < i+n; j++ {
		if b[j] < 0x80 || b[j] > 0xBF {
			return utf8.RuneError, 1
		}
		r = r<<6 | rune(b[j]&0x3F)
	}
	return r, n
}

// appendUnescaped appends the decoded content of a validated JSON string body
// (the bytes between the quotes) to dst. Escaped surrogates that do not form
// a pair decode to U+FFFD, as encoding/json does. nul reports whether the
// result holds U+0000.
func appendUnescaped(dst []byte, body []byte) (out []byte, nul bool) {
	i := 0
	for i < len(body) {
		j := i
		for j < len(body) && body[j] != '\\' {
			j++
		}
		dst = append(dst, body[i:j]...)
		if j >= len(body) {
			break
		}
		var r rune
		r, i = unescapeAt(body, j)
		nul = nul || r == 0
		dst = utf8.AppendRune(dst, r)
	}
	return dst, nul
}

// unescapeAt decodes the valid escape sequence at b[i] and returns the rune
// and the index after it.
func unescapeAt(b []byte, i int) (rune, int) {
	switch c := b[i+1]; c {
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
		r := hex4(b, i+2)
		i += 6
		if !utf16.IsSurrogate(r) {
			return r, i
		}
		if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
			if dec := utf16.DecodeRune(r, hex4(b, i+2)); dec != utf8.RuneError {
				return dec, i + 6
			}
		}
		return utf8.RuneError, i
	default: // '"', '\\', '/'
		return rune(c), i + 2
	}
}

// escapedNUL reports whether a validated JSON string body decodes to a text
// holding U+0000 (only possible through a \u0000 escape).
func escapedNUL(body []byte) bool {
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		if body[i+1] == 'u' && hex4(body, i+2) == 0 {
			return true
		}
		i++ // skip the escaped character; a \uXXXX tail holds no backslash
	}
	return false
}

// appendQuoted appends s as a JSON string with minimal escaping: only '"',
// '\' and control characters are escaped; no HTML escaping. s must be valid
// UTF-8.
func appendQuoted[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

func appendEscaped[S string | []byte](dst []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}
