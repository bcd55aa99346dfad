// Package compact holds the pure compaction logic of docs/design.md: ordering
// values encoded so that bytes.Compare orders them, the per-key state, and the
// decision table that classifies each event. It imports no I/O package; the
// engine in package pipeline applies its results to Pebble and files.
package compact

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Ordering is how an event type's ordering key is compared.
type Ordering uint8

// Ordering kinds (docs/configuration.md `ordering`).
const (
	Number    Ordering = iota + 1 // numerically, arbitrary precision
	String                        // bytewise on the decoded string
	Timestamp                     // as instants (RFC 3339, any offset)
	Arrival                       // Nakadi offset order
)

var orderingNames = map[string]Ordering{"number": Number, "string": String, "timestamp": Timestamp, "arrival": Arrival}

// ParseOrdering maps a config value to an Ordering.
func ParseOrdering(s string) (Ordering, error) {
	if o, ok := orderingNames[s]; ok {
		return o, nil
	}
	return 0, fmt.Errorf("compact: unknown ordering %q", s)
}

func (o Ordering) String() string {
	for name, v := range orderingNames {
		if v == o {
			return name
		}
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

// Errors for ordering values that cannot be compared.
var (
	ErrNotNumber    = errors.New("is not a number")
	ErrNotTimestamp = errors.New("is not an RFC 3339 timestamp")
)

// Bytes that start an encoded number; they order negative < zero < positive.
const (
	numNeg  = 0x01
	numZero = 0x02
	numPos  = 0x03
)

// maxExponent bounds the decimal exponent so that adjusting it cannot
// overflow. Values beyond it are not numbers any producer means.
const maxExponent = 1 << 40

// AppendNumber appends an order-preserving encoding of the decimal literal
// text (JSON number syntax, or the same with a leading '+' or without the
// leading digit before '.'): equal values encode equally (1.50 == 1.5e0), and
// bytes.Compare of two encodings orders the numbers exactly, without float
// rounding, for any number of digits.
//
// Layout: a sign byte; for non-zero values the decimal exponent E (value =
// 0.D × 10^E) as 8 big-endian bytes with the sign bit flipped, then the
// significant digits D without trailing zeros, then a terminator that sorts
// below every digit. Negative numbers invert every byte after the sign.
func AppendNumber(dst, text []byte) ([]byte, error) {
	neg, digits, exp, ok := parseDecimal(text)
	if !ok {
		return dst, ErrNotNumber
	}
	if len(digits) == 0 {
		return append(dst, numZero), nil
	}
	e := uint64(exp) ^ (1 << 63)
	var buf [8]byte
	for i := range buf {
		buf[i] = byte(e >> (56 - 8*i))
	}
	if !neg {
		dst = append(dst, numPos)
		dst = append(dst, buf[:]...)
		dst = append(dst, digits...)
		return append(dst, 0x00), nil
	}
	dst = append(dst, numNeg)
	for _, b := range buf {
		dst = append(dst, ^b)
	}
	for _, d := range digits {
		dst = append(dst, ^d)
	}
	return append(dst, 0xff), nil
}

// parseDecimal splits a decimal literal into its sign, significant digits
// (ASCII, no leading or trailing zeros; empty for zero) and exponent such that
// value = 0.digits × 10^exp. The digits alias text where possible.
func parseDecimal(text []byte) (neg bool, digits []byte, exp int64, ok bool) {
	i := 0
	if i < len(text) && (text[i] == '-' || text[i] == '+') {
		neg = text[i] == '-'
		i++
	}
	intStart := i
	for i < len(text) && isDigit(text[i]) {
		i++
	}
	intPart := text[intStart:i]
	var frac []byte
	if i < len(text) && text[i] == '.' {
		i++
		fs := i
		for i < len(text) && isDigit(text[i]) {
			i++
		}
		frac = text[fs:i]
		if len(frac) == 0 {
			return false, nil, 0, false
		}
	}
	if len(intPart) == 0 && len(frac) == 0 {
		return false, nil, 0, false
	}
	var e10 int64
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		i++
		eneg := false
		if i < len(text) && (text[i] == '-' || text[i] == '+') {
			eneg = text[i] == '-'
			i++
		}
		es := i
		for i < len(text) && isDigit(text[i]) {
			if e10 > maxExponent {
				return false, nil, 0, false
			}
			e10 = e10*10 + int64(text[i]-'0')
			i++
		}
		if i == es {
			return false, nil, 0, false
		}
		if eneg {
			e10 = -e10
		}
	}
	if i != len(text) {
		return false, nil, 0, false
	}
	// value = intPart.frac × 10^e10 = 0.(intPart frac) × 10^(len(intPart)+e10)
	all := make([]byte, 0, len(intPart)+len(frac))
	all = append(append(all, intPart...), frac...)
	exp = int64(len(intPart)) + e10
	lead := 0
	for lead < len(all) && all[lead] == '0' {
		lead++
	}
	all = all[lead:]
	exp -= int64(lead)
	end := len(all)
	for end > 0 && all[end-1] == '0' {
		end--
	}
	all = all[:end]
	if len(all) == 0 {
		return neg, nil, 0, true
	}
	if exp > maxExponent || exp < -maxExponent {
		return false, nil, 0, false
	}
	return neg, all, exp, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// AppendTimestamp appends an order-preserving encoding of an RFC 3339
// timestamp ('T', 't' or ' ' between date and time; 'Z', 'z' or ±hh:mm): the
// instant as seconds since the epoch (8 bytes, sign bit flipped) and
// nanoseconds (4 bytes). Fraction digits beyond nanoseconds are truncated.
func AppendTimestamp(dst, text []byte) ([]byte, error) {
	sec, nsec, ok := ParseTimestamp(text)
	if !ok {
		return dst, ErrNotTimestamp
	}
	u := uint64(sec) ^ (1 << 63)
	for i := 0; i < 8; i++ {
		dst = append(dst, byte(u>>(56-8*i)))
	}
	return append(dst, byte(nsec>>24), byte(nsec>>16), byte(nsec>>8), byte(nsec)), nil
}

// ParseTimestamp parses RFC 3339 text into seconds since the epoch and
// nanoseconds, accepting the variants of docs/mapping.md.
func ParseTimestamp(s []byte) (sec int64, nsec int32, ok bool) {
	// YYYY-MM-DD?hh:mm:ss[.f+](Z|±hh:mm)
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return 0, 0, false
	}
	switch s[10] {
	case 'T', 't', ' ':
	default:
		return 0, 0, false
	}
	year, ok1 := atoi(s[0:4])
	month, ok2 := atoi(s[5:7])
	day, ok3 := atoi(s[8:10])
	hour, ok4 := atoi(s[11:13])
	minute, ok5 := atoi(s[14:16])
	second, ok6 := atoi(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59 {
		return 0, 0, false
	}
	i := 19
	if s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			if i-fs < 9 {
				nsec = nsec*10 + int32(s[i]-'0')
			}
			i++
		}
		if i == fs {
			return 0, 0, false
		}
		for n := i - fs; n < 9; n++ {
			nsec *= 10
		}
	}
	if i >= len(s) {
		return 0, 0, false
	}
	var offset int64
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return 0, 0, false
		}
		oh, okh := atoi(s[i+1 : i+3])
		om, okm := atoi(s[i+4 : i+6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, 0, false
		}
		offset = int64(oh*3600 + om*60)
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, 0, false
	}
	if i != len(s) {
		return 0, 0, false
	}
	days := daysFromCivil(int64(year), month, day)
	sec = days*86400 + int64(hour*3600+minute*60+second) - offset
	return sec, nsec, true
}

func atoi(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := int64((m + 9) % 12)
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// AppendArrival appends the arrival order of the index-th event of a batch
// whose cursor has the given offset. A batch cursor names its last event and
// offsets of one partition compare as strings, so (cursor offset, index)
// orders the events of a partition as Nakadi sent them.
func AppendArrival(dst []byte, offset string, index int) []byte {
	dst = append(dst, offset...)
	dst = append(dst, 0x00)
	if index < 0 || index > math.MaxUint32 {
		index = math.MaxUint32
	}
	return append(dst, byte(index>>24), byte(index>>16), byte(index>>8), byte(index))
}

// AppendKeyPart appends one component of a composite partition key so that
// the concatenation is unambiguous: 0x00 is escaped as 0x00 0xff and each
// component ends with 0x00 0x01.
func AppendKeyPart(dst, part []byte) []byte {
	for _, c := range part {
		if c == 0x00 {
			dst = append(dst, 0x00, 0xff)
			continue
		}
		dst = append(dst, c)
	}
	return append(dst, 0x00, 0x01)
}

// KeyParts splits a composite key made by AppendKeyPart back into its
// components (for status output and tests).
func KeyParts(key []byte) [][]byte {
	var parts [][]byte
	var cur []byte
	for i := 0; i < len(key); i++ {
		if key[i] == 0x00 && i+1 < len(key) {
			if key[i+1] == 0x01 {
				parts = append(parts, cur)
				cur = nil
				i++
				continue
			}
			if key[i+1] == 0xff {
				cur = append(cur, 0x00)
				i++
				continue
			}
		}
		cur = append(cur, key[i])
	}
	return parts
}
