package flatten

// Decimals (docs/mapping.md): a JSON number is written with its text exactly,
// except that exponent forms are normalized to plain notation exactly,
// keeping every digit of the mantissa (1.50e1 → 15.0, 1e3 → 1000, -0e5 → -0,
// 1.5e-3 → 0.0015). A JSON string holding a plain decimal literal
// (-?digits(.digits)?, leading zeros allowed) is written as is. Values are
// bounded by what PostgreSQL's unconstrained NUMERIC holds: at most 131072
// digits before the point (leading zeros not counted) and 16383 after.

const (
	maxIntDigits  = 131072
	maxFracDigits = 16383
)

// appendDecimalNumber appends the plain notation of the JSON number raw;
// when it is longer than room bytes it appends nothing and returns
// overRoom, having measured it first.
func appendDecimalNumber(dst []byte, raw []byte, room int) ([]byte, string) {
	neg := raw[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	intStart := i
	i = skipDigits(raw, i)
	intPart := raw[intStart:i]
	var frac []byte
	if i < len(raw) && raw[i] == '.' {
		j := skipDigits(raw, i+1)
		frac, i = raw[i+1:j], j
	}
	if i == len(raw) { // no exponent: the text as is
		if len(frac) > maxFracDigits || significantIntDigits(intPart) > maxIntDigits {
			return dst, outOfRange
		}
		if len(raw) > room {
			return dst, overRoom
		}
		return append(dst, raw...), ""
	}
	exp := parseExponent(raw[i+1:])
	return appendShifted(dst, neg, intPart, frac, exp, room)
}

const outOfRange = "out of the decimal range (131072 digits before the point, 16383 after)"

// parseExponent reads [+-]digits, saturating far beyond any valid range.
func parseExponent(b []byte) int64 {
	neg := b[0] == '-'
	if b[0] == '+' || b[0] == '-' {
		b = b[1:]
	}
	var e int64
	for _, c := range b {
		if e < 1<<40 {
			e = e*10 + int64(c-'0')
		}
	}
	if neg {
		return -e
	}
	return e
}

// appendShifted writes the digits intPart‖frac with the point moved exp
// places right of its place after intPart, unless that is longer than
// room.
func appendShifted(dst []byte, neg bool, intPart, frac []byte, exp int64, room int) ([]byte, string) {
	n := int64(len(intPart) + len(frac))
	point := int64(len(intPart)) + exp // digits before the point
	zeros := int64(0)                  // leading zeros of the digits
	for zeros < n && digitAt(intPart, frac, int(zeros)) == '0' {
		zeros++
	}
	intDigits := max(1, point-zeros)
	if zeros == n {
		intDigits = 1
	}
	if intDigits > maxIntDigits || n-point > maxFracDigits {
		return dst, outOfRange
	}
	if shiftedLen(neg, n, point, zeros) > int64(room) {
		return dst, overRoom
	}
	if neg {
		dst = append(dst, '-')
	}
	switch {
	case point <= 0:
		dst = append(dst, '0', '.')
		dst = appendZeros(dst, -point)
		dst = append(append(dst, intPart...), frac...)
	default:
		intEnd := min(point, n) // integer digits taken from the digits; the rest are zeros
		if zeros >= intEnd {
			dst = append(dst, '0')
		} else {
			for k := zeros; k < intEnd; k++ {
				dst = append(dst, digitAt(intPart, frac, int(k)))
			}
			dst = appendZeros(dst, point-intEnd)
		}
		if point < n {
			dst = append(dst, '.')
			for k := point; k < n; k++ {
				dst = append(dst, digitAt(intPart, frac, int(k)))
			}
		}
	}
	return dst, ""
}

// shiftedLen is the length of what appendShifted writes for n digits with
// the point after digit point and zeros leading zeros.
func shiftedLen(neg bool, n, point, zeros int64) int64 {
	var l int64
	if neg {
		l++
	}
	if point <= 0 {
		return l + 2 - point + n // "0." zeros digits
	}
	intEnd := min(point, n)
	if zeros >= intEnd {
		l++ // "0"
	} else {
		l += intEnd - zeros + point - intEnd
	}
	if point < n {
		l += 1 + n - point
	}
	return l
}

func digitAt(intPart, frac []byte, k int) byte {
	if k < len(intPart) {
		return intPart[k]
	}
	return frac[k-len(intPart)]
}

func appendZeros(dst []byte, n int64) []byte {
	for range n {
		dst = append(dst, '0')
	}
	return dst
}

func significantIntDigits(intPart []byte) int {
	z := 0
	for z < len(intPart)-1 && intPart[z] == '0' {
		z++
	}
	return len(intPart) - z
}

// checkDecimalLiteral reports why the text s is not a plain decimal literal
// -?digits(.digits)? within range, or "".
func checkDecimalLiteral(s []byte) string {
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i = 1
	}
	j := skipDigits(s, i)
	if j == i {
		return "not a decimal"
	}
	intPart := s[i:j]
	fracDigits := 0
	if j < len(s) && s[j] == '.' {
		k := skipDigits(s, j+1)
		if k == j+1 {
			return "not a decimal"
		}
		fracDigits, j = k-j-1, k
	}
	switch {
	case j != len(s):
		return "not a decimal"
	case fracDigits > maxFracDigits || significantIntDigits(intPart) > maxIntDigits:
		return outOfRange
	}
	return ""
}
