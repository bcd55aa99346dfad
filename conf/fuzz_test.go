package conf

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// urlKeys are the keys whose values are URLs (credentials are refused in
// each; the problem must not print them).
var urlKeys = []string{"nakadi.url", "storage.url", "storage.endpoint", "notify.nats_url", "checkpoint.url"}

// FuzzCheck is `materializer check` on fuzzed input: Parse never panics,
// whatever the bytes; and a URL key whose userinfo holds a secret (a
// password, or a bare token) never has it printed, whatever the rest of the
// URL is (scheme, user, host, more URLs in a list, bytes that do not
// parse). The seeds run in every `go test`; `go test ./conf -run '^$'
// -fuzz FuzzCheck` searches further.
func FuzzCheck(f *testing.F) {
	base, err := os.ReadFile("testdata/base.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(base), uint8(0), "https", "me", "nakadi.example.org")
	f.Add(string(base), uint8(3), "nats", "user", "h2:4222")
	f.Add("[nakadi]\nurl = 5\n", uint8(1), "s3", "key", "bucket/prefix")
	f.Add("[storage]\nurl = [\"s3://k:SECRETPW@b\"]\n", uint8(2), "%zz", "u", "host")
	f.Add("nakadi = {url = \"https://SECRETTOKEN@x\"", uint8(4), "file", "a/b", "/srv")
	f.Add("[notify]\nnats_url = \"\"\"\n", uint8(3), "nats", "a b", "h1:4222,nats://h2")
	f.Add("\"https://u:SECRETPW@h\" = 1\n", uint8(0), "https", "\"q\"", "h\n")
	f.Add(string(base)+"\n[daemon]\nlog_level = \"https://SECRETTOKEN@x\"\n", uint8(1), "", "", "")
	f.Fuzz(func(t *testing.T, doc string, key uint8, scheme, user, rest string) {
		_, _ = Parse([]byte(doc), ForRun) // must not panic
		if strings.Contains(doc, "SECRET") {
			// The secret markers may stand anywhere in doc (an unknown
			// key, a wrong type, a syntax error): only their userinfo
			// positions are promised, so check those lines alone.
			checkLines(t, doc)
		}
		if strings.Contains(scheme+rest, "SECRET") {
			return // not in a userinfo position: printing it is fine
		}
		k := urlKeys[int(key)%len(urlKeys)]
		for _, secret := range []string{user + ":SECRETPW", "SECRETTOKEN"} {
			url := scheme + "://" + secret + "@" + rest
			text := string(base) + fmt.Sprintf("\n[%s]\n%s = %s\n", section(k), leaf(k), tomlString(url))
			if strings.Contains(string(base), "["+section(k)+"]") {
				text = strings.Replace(string(base), "["+section(k)+"]", fmt.Sprintf("[%s]\n%s = %s", section(k), leaf(k), tomlString(url)), 1)
			}
			_, err := Parse([]byte(text), ForRun)
			if err == nil {
				t.Fatalf("%s = %q: no problem reported", k, url)
			}
			if out := err.Error(); strings.Contains(out, "SECRET") {
				t.Fatalf("%s = %q: the secret is printed: %s", k, url, out)
			}
		}
	})
}

// checkLines: a problem about a URL with a secret in its userinfo, wherever
// in the file, never prints the secret.
func checkLines(t *testing.T, doc string) {
	_, err := Parse([]byte(doc), ForRun)
	if err == nil {
		return
	}
	for _, m := range []string{"://SECRETTOKEN@", ":SECRETPW@"} {
		if strings.Contains(err.Error(), m) {
			t.Fatalf("a secret in userinfo position is printed: %s", err)
		}
	}
}

func section(key string) string { return key[:strings.IndexByte(key, '.')] }
func leaf(key string) string    { return key[strings.IndexByte(key, '.')+1:] }

// tomlString renders s as a TOML basic string (invalid UTF-8 becomes
// U+FFFD: a TOML file is UTF-8).
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
