package compact

import (
	"bytes"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func mustNumber(t *testing.T, s string) []byte {
	t.Helper()
	b, err := AppendNumber(nil, []byte(s))
	if err != nil {
		t.Fatalf("AppendNumber(%q): %v", s, err)
	}
	return b
}

func TestNumberOrderExamples(t *testing.T) {
	// Each value is strictly greater than the one before it.
	ascending := []string{
		"-1e400", "-123456789012345678901234567890", "-10", "-9.5", "-9", "-1.25", "-1.2", "-1",
		"-0.5", "-1e-30", "0", "1e-30", "0.000123", "0.5", "1", "1.2", "1.25", "9", "9.5",
		"10", "99999999999999999999", "100000000000000000000", "123456789012345678901234567890.5", "1e400",
	}
	for i := 1; i < len(ascending); i++ {
		a, b := mustNumber(t, ascending[i-1]), mustNumber(t, ascending[i])
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("%s should sort below %s", ascending[i-1], ascending[i])
		}
	}
	equal := [][]string{
		{"0", "-0", "0.000", "0e10", "+0"},
		{"1.5", "1.50", "15e-1", "0.15E1", "+1.5", "150e-2"},
		{"-12", "-12.0", "-1.2e1", "-120E-1"},
		{"1000", "1e3", "1E+3", "10e2"},
		{".5", "0.5", "5e-1"},
	}
	for _, group := range equal {
		first := mustNumber(t, group[0])
		for _, s := range group[1:] {
			if !bytes.Equal(first, mustNumber(t, s)) {
				t.Errorf("%s and %s should encode equally", group[0], s)
			}
		}
	}
	for _, bad := range []string{"", "-", "+", ".", "1.", "1e", "1e+", "abc", "1..2", "0x10", "1 ", " 1", "--1", "1e99999999999999999", "NaN", "Infinity"} {
		if _, err := AppendNumber(nil, []byte(bad)); err == nil {
			t.Errorf("AppendNumber(%q) accepted", bad)
		}
	}
}

// The encoding orders random decimals exactly as big.Rat does.
func TestNumberOrderMatchesBigRat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func() string {
		var b []byte
		if rng.IntN(2) == 0 {
			b = append(b, '-')
		}
		n := 1 + rng.IntN(25)
		for i := 0; i < n; i++ {
			b = append(b, byte('0'+rng.IntN(10)))
		}
		if rng.IntN(2) == 0 {
			b = append(b, '.')
			for i := 0; i <= rng.IntN(10); i++ {
				b = append(b, byte('0'+rng.IntN(10)))
			}
		}
		if rng.IntN(3) == 0 {
			b = append(b, 'e')
			b = strconv.AppendInt(b, int64(rng.IntN(60)-30), 10)
		}
		return string(b)
	}
	for i := 0; i < 20000; i++ {
		a, b := gen(), gen()
		ra, _ := new(big.Rat).SetString(a)
		rb, _ := new(big.Rat).SetString(b)
		want := ra.Cmp(rb)
		got := bytes.Compare(mustNumber(t, a), mustNumber(t, b))
		if got != want {
			t.Fatalf("compare(%s, %s) = %d, want %d", a, b, got, want)
		}
	}
}

func TestTimestampOrder(t *testing.T) {
	cases := []struct{ a, b string }{
		{"2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000001Z"},
		{"2024-01-01T01:00:00+02:00", "2024-01-01T00:00:00Z"}, // 23:00Z the day before
		{"1969-12-31T23:59:59.999999999Z", "1970-01-01T00:00:00Z"},
		{"2024-02-29 12:00:00z", "2024-03-01t00:00:00-00:30"},
	}
	for _, c := range cases {
		a, err := AppendTimestamp(nil, []byte(c.a))
		if err != nil {
			t.Fatal(c.a, err)
		}
		b, err := AppendTimestamp(nil, []byte(c.b))
		if err != nil {
			t.Fatal(c.b, err)
		}
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("%s should sort below %s", c.a, c.b)
		}
	}
	same := [][2]string{
		{"2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z"},
		{"2024-05-01T10:00:00.1234567891Z", "2024-05-01T10:00:00.123456789Z"},
		{"2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00.500Z"},
	}
	for _, s := range same {
		a, _ := AppendTimestamp(nil, []byte(s[0]))
		b, _ := AppendTimestamp(nil, []byte(s[1]))
		if !bytes.Equal(a, b) {
			t.Errorf("%s and %s should encode equally", s[0], s[1])
		}
	}
	for _, bad := range []string{"2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00", "2024-01-01", "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00+0200", "2024-01-01X00:00:00Z", "2024-13-01T00:00:00Z"} {
		if _, err := AppendTimestamp(nil, []byte(bad)); err == nil {
			t.Errorf("AppendTimestamp(%q) accepted", bad)
		}
	}
}

func TestParseTimestampMatchesTimePackage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 5000; i++ {
		ts := time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9)).UTC()
		zone := time.FixedZone("", (rng.IntN(48)-24)*1800)
		s := ts.In(zone).Format(time.RFC3339Nano)
		sec, nsec, ok := ParseTimestamp([]byte(s))
		if !ok || sec != ts.Unix() || int64(nsec) != int64(ts.Nanosecond()) {
			t.Fatalf("ParseTimestamp(%s) = %d.%09d %v, want %d.%09d", s, sec, nsec, ok, ts.Unix(), ts.Nanosecond())
		}
	}
}

func TestArrivalOrder(t *testing.T) {
	a := AppendArrival(nil, "001-0001-000000000000000009", 4)
	b := AppendArrival(nil, "001-0001-000000000000000014", 0)
	c := AppendArrival(nil, "001-0001-000000000000000014", 1)
	if !(bytes.Compare(a, b) < 0 && bytes.Compare(b, c) < 0) {
		t.Fatal("arrival order broken")
	}
}

func TestKeyParts(t *testing.T) {
	parts := [][]byte{[]byte("a"), {0x00, 'b', 0x01}, nil, []byte("c\x00")}
	var key []byte
	for _, p := range parts {
		key = AppendKeyPart(key, p)
	}
	got := KeyParts(key)
	if len(got) != len(parts) {
		t.Fatalf("got %d parts", len(got))
	}
	for i := range parts {
		if !bytes.Equal(got[i], parts[i]) {
			t.Errorf("part %d: %q != %q", i, got[i], parts[i])
		}
	}
	// ("a","b") and ("ab","") must differ.
	k1 := AppendKeyPart(AppendKeyPart(nil, []byte("a")), []byte("b"))
	k2 := AppendKeyPart(AppendKeyPart(nil, []byte("ab")), nil)
	if bytes.Equal(k1, k2) {
		t.Fatal("composite keys collide")
	}
}

func FuzzNumber(f *testing.F) {
	for _, s := range []string{"1", "-1.5e3", "0.000", "12345678901234567890", "1e-7"} {
		f.Add(s, "2")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ea, erra := AppendNumber(nil, []byte(a))
		eb, errb := AppendNumber(nil, []byte(b))
		ra, oka := new(big.Rat).SetString(a)
		rb, okb := new(big.Rat).SetString(b)
		if erra != nil || errb != nil || !oka || !okb {
			return
		}
		if len(a) > 0 && (a[0] == '0' && len(a) > 1 && (a[1] == 'x' || a[1] == 'b' || a[1] == 'o')) {
			return
		}
		if got, want := bytes.Compare(ea, eb), ra.Cmp(rb); got != want {
			t.Fatalf("compare(%q,%q)=%d want %d", a, b, got, want)
		}
	})
}
