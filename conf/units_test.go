package conf

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"90s": 90 * time.Second, "5m": 5 * time.Minute, "1h30m": 90 * time.Minute, "500ms": 500 * time.Millisecond,
		"7d": 168 * time.Hour, "1d12h": 36 * time.Hour, "1.5d": 36 * time.Hour, "0s": 0, "-1d": -24 * time.Hour,
	}
	for s, want := range good {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "5", "d", "5x", "1dd", "1d 2h", "five minutes"} {
		if got, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", s, got)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "4096": 4096, "1B": 1, "1KiB": 1024, "256MiB": 256 << 20, "10GiB": 10 << 30, "2TiB": 2 << 40,
		"1KB": 1000, "500MB": 500e6, "2GB": 2e9, "1TB": 1e12, "1.5KiB": 1536, "10 GiB": 10 << 30,
	}
	for s, want := range good {
		if got, err := ParseByteSize(s); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "MiB", "-1", "+1", "1e3", "1..5MiB", "5XB", "5mib", "0x10", "1_000", ".5MiB", "9999999TiB"} {
		if got, err := ParseByteSize(s); err == nil {
			t.Errorf("ParseByteSize(%q) = %v, want an error", s, got)
		}
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second: "10s", 5 * time.Minute: "5m", 2 * time.Hour: "2h", 90 * time.Minute: "1h30m", 0: "0s",
	} {
		if got := Dur(d).String(); got != want {
			t.Errorf("Dur(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{256 << 20: "256MiB", 10 << 30: "10GiB", 1000: "1000B", 1536: "1536B"} {
		if got := Bytes(n).String(); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
