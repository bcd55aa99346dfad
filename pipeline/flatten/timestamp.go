package flatten

// Timestamps (docs/mapping.md): input is RFC 3339 — date, 'T' or 't' or ' ',
// time with optional fraction of any length, 'Z' or 'z' or ±hh:mm — output
// is UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ, the fraction truncated (never
// rounded) or zero-padded to 6 digits. Rejected: leap seconds (:60, since
// neither the warehouses nor Go can hold them exactly), dates that do not
// exist (2023-02-29), and instants whose UTC year is outside 0001–9999.
// Calendar arithmetic is proleptic Gregorian, done here without package time.

// appendTimestamp appends the UTC form of the RFC 3339 text s, or returns a
// reason (completing "… is not a timestamp").
func appendTimestamp(dst []byte, s []byte) ([]byte, string) {
	secs, micros, reason := parseTimestamp(s)
	if reason != "" {
		return dst, reason
	}
	days := floorDiv(secs, 86400)
	rem := secs - days*86400
	y, m, d := civilFromDays(days)
	if y < 1 || y > 9999 {
		return dst, "year outside 0001-9999 in UTC"
	}
	dst = appendDigits(dst, int(y), 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, m, 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, d, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, int(rem/3600), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(rem/60%60), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(rem%60), 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, micros, 6)
	return append(dst, 'Z'), ""
}

// parseTimestamp returns the seconds since 1970-01-01T00:00:00Z and the
// truncated microseconds of s.
func parseTimestamp(s []byte) (secs int64, micros int, reason string) {
	const form = "YYYY-MM-DDTHH:MM:SS"
	if len(s) < len(form)+1 {
		return 0, 0, "too short for RFC 3339"
	}
	year, ok1 := digitsAt(s, 0, 4)
	month, ok2 := digitsAt(s, 5, 2)
	day, ok3 := digitsAt(s, 8, 2)
	hour, ok4 := digitsAt(s, 11, 2)
	minute, ok5 := digitsAt(s, 14, 2)
	sec, ok6 := digitsAt(s, 17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || s[4] != '-' || s[7] != '-' ||
		(s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':' {
		return 0, 0, "not in RFC 3339 form YYYY-MM-DDTHH:MM:SS"
	}
	i := len(form)
	micros, i, reason = fraction(s, i)
	if reason != "" {
		return 0, 0, reason
	}
	offset, reason := zone(s, i)
	switch {
	case reason != "":
		return 0, 0, reason
	case month < 1 || month > 12 || day < 1 || day > daysIn(year, month):
		return 0, 0, "no such date"
	case sec == 60:
		return 0, 0, "leap second :60 not supported"
	case hour > 23 || minute > 59 || sec > 59:
		return 0, 0, "no such time of day"
	}
	secs = daysFromCivil(int64(year), month, day)*86400 + int64(hour*3600+minute*60+sec) - int64(offset)
	return secs, micros, ""
}

// fraction reads an optional '.' and digits at s[i], truncated to 6 digits.
func fraction(s []byte, i int) (micros, next int, reason string) {
	if i >= len(s) || s[i] != '.' {
		return 0, i, ""
	}
	j := i + 1
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		if j-i <= 6 {
			micros = micros*10 + int(s[j]-'0')
		}
		j++
	}
	if j == i+1 {
		return 0, j, "a digit must follow '.'"
	}
	for k := j - i - 1; k < 6; k++ {
		micros *= 10
	}
	return micros, j, ""
}

// zone reads Z, z or ±hh:mm at s[i], which must end s, and returns the
// offset east of UTC in seconds.
func zone(s []byte, i int) (int, string) {
	rest := s[i:]
	if len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z') {
		return 0, ""
	}
	if len(rest) != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return 0, "zone must be Z or ±hh:mm"
	}
	h, ok1 := digitsAt(rest, 1, 2)
	m, ok2 := digitsAt(rest, 4, 2)
	if !ok1 || !ok2 || h > 23 || m > 59 {
		return 0, "zone must be Z or ±hh:mm"
	}
	off := h*3600 + m*60
	if rest[0] == '-' {
		off = -off
	}
	return off, ""
}

func digitsAt(s []byte, i, n int) (int, bool) {
	v := 0
	for _, c := range s[i : i+n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func appendDigits(dst []byte, v, width int) []byte {
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (H. Hinnant's algorithm).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := int64((m + 9) % 12)
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	m = int((mp+2)%12 + 1)
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}
