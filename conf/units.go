package conf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a config duration written as a string: Go syntax ("90s",
// "1h30m") plus "d" for days ("7d"). A value that does not parse is kept with
// its error so Validate can report it next to every other problem.
type Duration struct {
	d    time.Duration
	text string // as written; "" when the key was not set
	err  error
}

// Dur returns a set Duration of d (for defaults and tests).
func Dur(d time.Duration) Duration { return Duration{d: d, text: formatDuration(d)} }

// Duration returns the parsed value (0 when unset or invalid).
func (d Duration) Duration() time.Duration { return d.d }

// IsSet reports whether the key was given (or has a default).
func (d Duration) IsSet() bool { return d.text != "" }

// String is the value as written, e.g. "5m".
func (d Duration) String() string { return d.text }

// MarshalText renders the value as written, for re-encoding a config.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.text), nil }

func (d *Duration) setTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return errors.New(`must be a duration string like "5m"`)
	}
	parsed, err := ParseDuration(s)
	*d = Duration{d: parsed, text: s, err: err}
	return nil
}

// ParseDuration parses Go duration syntax extended by a "d" (24h) unit.
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf(`is not a duration (like "90s", "5m", "2h30m", "7d")`)
	if s == "" {
		return 0, bad
	}
	d, err := time.ParseDuration(daysToHours(s))
	if err != nil {
		return 0, bad
	}
	return d, nil
}

// daysToHours rewrites every "<number>d" in s as "<number*24>h".
func daysToHours(s string) string {
	var b strings.Builder
	start := 0 // start of the current number
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9' || c == '.':
		case c == 'd':
			n, err := strconv.ParseFloat(s[start:i], 64)
			if err != nil {
				return s // let time.ParseDuration reject it
			}
			b.WriteString(strconv.FormatFloat(n*24, 'f', -1, 64))
			b.WriteByte('h')
			start = i + 1
		default:
			b.WriteString(s[start : i+1])
			start = i + 1
		}
	}
	b.WriteString(s[start:])
	return b.String()
}

func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ByteSize is a config size: a string with a unit ("256MiB", "10GiB", "1GB")
// or a plain integer number of bytes. Binary units: B KiB MiB GiB TiB;
// decimal units: KB MB GB TB.
type ByteSize struct {
	n    int64
	text string
	err  error
}

// Bytes returns a set ByteSize of n (for defaults and tests).
func Bytes(n int64) ByteSize { return ByteSize{n: n, text: formatBytes(n)} }

// Bytes returns the parsed value (0 when unset or invalid).
func (b ByteSize) Bytes() int64 { return b.n }

// IsSet reports whether the key was given (or has a default).
func (b ByteSize) IsSet() bool { return b.text != "" }

// String is the value as written, e.g. "256MiB".
func (b ByteSize) String() string { return b.text }

// MarshalText renders the value as written, for re-encoding a config.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.text), nil }

func (b *ByteSize) setTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*b = ByteSize{n: v, text: strconv.FormatInt(v, 10)}
		if v < 0 {
			b.err = errors.New("is negative")
		}
	case string:
		n, err := ParseByteSize(v)
		*b = ByteSize{n: n, text: v, err: err}
	default:
		return errors.New(`must be a size like "256MiB" or an integer number of bytes`)
	}
	return nil
}

var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
}

// ParseByteSize parses "256MiB", "1.5GiB", "10 GB" or "4096".
func ParseByteSize(s string) (int64, error) {
	bad := errors.New(`is not a size (like "256MiB", "10GiB", "500MB" or a number of bytes)`)
	num := strings.TrimRight(s, "BKMGTi")
	unit := s[len(num):]
	num = strings.TrimSpace(num)
	mult, ok := byteUnits[unit]
	if !ok || !isDecimalNumber(num) {
		return 0, bad
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n > math.MaxInt64/mult {
			return 0, errors.New("is too large")
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, bad
	}
	if f*float64(mult) >= math.MaxInt64 {
		return 0, errors.New("is too large")
	}
	return int64(f * float64(mult)), nil
}

func formatBytes(n int64) string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
		if m := byteUnits[u]; n != 0 && n%m == 0 {
			return strconv.FormatInt(n/m, 10) + u
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// isDecimalNumber reports whether s is digits with at most one inner dot.
func isDecimalNumber(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
			digits++
		case s[i] == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1 && s[0] != '.' && s[len(s)-1] != '.'
}
