package flatten

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"unicode/utf8"
)

// rejectedColumns are the columns of a rejected file (docs/files-and-notices.md).
var rejectedColumns = [...]string{"partition", "offset", "error", "raw_event"}

// RejectedColumns returns the column names of a rejected file
// (docs/files-and-notices.md), all of type string.
func RejectedColumns() []string { return append([]string(nil), rejectedColumns[:]...) }

// RejectedHeader returns the header line of a rejected file.
func RejectedHeader(csv CSV) []byte {
	c := csvOf(csv)
	var b []byte
	for i, name := range rejectedColumns {
		if i > 0 {
			b = append(b, c.delim)
		}
		b = c.appendStringField(b, name)
	}
	return append(b, '\n')
}

// maxReason bounds the error field of a rejected row, so that it fits the
// warehouses' plain text types (see DDL).
const maxReason = 1000

// AppendRejectedRow appends one row of a rejected file: partition, offset,
// the reason and the event's bytes as received. So that the file stays valid
// UTF-8 text that every warehouse can load, reason is cut at 1000 bytes (at
// a character boundary, marked "…"), and each byte of raw that is not
// part of valid UTF-8, and each NUL byte, is written as U+FFFD; every other
// byte is kept (newlines included, the field is then quoted). An empty
// partition or offset is written as the null marker.
//
// When the raw_event field would be longer than maxRaw bytes (0: no limit;
// limits.max_rejected_raw_bytes), it holds the longest prefix of the event
// that fits (whole characters), and the error says so: how many of how many
// bytes it holds and the sha256 of the whole event, so the event can still
// be identified in Nakadi.
func AppendRejectedRow(dst []byte, csv CSV, partition, offset, reason string, raw []byte, maxRaw int) []byte {
	c := csvOf(csv)
	dst = c.appendNullable(dst, partition)
	dst = append(dst, c.delim)
	dst = c.appendNullable(dst, offset)
	dst = append(dst, c.delim)
	kept := sanitizedPrefix(raw, maxRaw)
	reason = cutReason(sanitize(reason))
	if kept < len(raw) {
		sum := sha256.Sum256(raw)
		reason += " (raw_event holds the first " + strconv.Itoa(kept) + " of " + strconv.Itoa(len(raw)) +
			" bytes; sha256 of the whole event " + hex.EncodeToString(sum[:]) + ")"
	}
	dst = c.appendStringField(dst, reason)
	dst = append(dst, c.delim)
	start := len(dst)
	dst = appendSanitized(dst, raw[:kept])
	dst = c.finishField(dst, start)
	return append(dst, '\n')
}

// sanitizedPrefix returns how many bytes of b appendSanitized writes in at
// most limit bytes (0: all), cutting between characters.
func sanitizedPrefix(b []byte, limit int) int {
	if limit <= 0 || len(b) <= limit/3 {
		return len(b) // U+FFFD, 3 bytes, is the most one byte becomes
	}
	out := 0
	for i := 0; i < len(b); {
		in, n := 1, 1 // bytes read, bytes written
		switch c := b[i]; {
		case c == 0:
			n = 3
		case c >= utf8.RuneSelf:
			r, size := decodeRune(b, i)
			if r == utf8.RuneError && size == 1 {
				n = 3
			} else {
				in, n = size, size
			}
		}
		if out+n > limit {
			return i
		}
		out += n
		i += in
	}
	return len(b)
}

func csvOf(o CSV) csvOut {
	if o.Delimiter == 0 {
		o.Delimiter = ','
	}
	return newCSVOut(o.Delimiter, o.Null)
}

func (c *csvOut) appendNullable(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, c.null...)
	}
	return c.appendStringField(dst, s)
}

func sanitize(s string) string {
	if utf8.ValidString(s) && !containsNUL(s) {
		return s
	}
	return string(appendSanitized(nil, []byte(s)))
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// appendSanitized appends b with invalid UTF-8 bytes and NUL as U+FFFD.
func appendSanitized(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == 0:
			dst = utf8.AppendRune(dst, utf8.RuneError)
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := decodeRune(b, i)
			if r == utf8.RuneError && n == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, b[i:i+n]...)
			}
			i += n
		}
	}
	return dst
}

func cutReason(s string) string {
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
