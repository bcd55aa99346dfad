package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://nakadi.example.org":                     "https://nakadi.example.org",
		"https://SECRETTOKEN@nakadi.example.org/x":       "https://xxxxx@nakadi.example.org/x",
		"https://user:SECRETPW@nakadi":                   "https://xxxxx@nakadi",
		"nats://h1:4222,nats://user:SECRETPW@h2:4222":    "nats://h1:4222,nats://xxxxx@h2:4222",
		"nats://a:SECRETPW@h1, nats://SECRETTOKEN@h2":    "nats://xxxxx@h1, nats://xxxxx@h2",
		"%zz://u:SECRETPW@host":                          "%zz://xxxxx@host",
		"u:SECRETPW@host:4222":                           "xxxxx@host:4222",
		"https://u/x:SECRETPW@host":                      "https://xxxxx@host",
		"https://u:SECRET@PW@host":                       "https://xxxxx@host",
		"s3://bucket/prefix":                             "s3://bucket/prefix",
		"file:///srv/data":                               "file:///srv/data",
		"https://a,b:SECRETPW@host":                      "https://a,xxxxx@host",
		"https://host/?q=1#frag":                         "https://host/?q=1#frag",
		"https://x:SECRETPW@h1/,https://y:SECRETPW@h2/z": "https://xxxxx@h1/,https://xxxxx@h2/z",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		`Get "https://SECRETTOKEN@nakadi/subscriptions": dial tcp: refused`:  `Get "https://xxxxx@nakadi/subscriptions": dial tcp: refused`,
		"connect nats://u:SECRETPW@h1:4222,nats://u:SECRETPW@h2:4222 failed": "connect nats://xxxxx@h2:4222 failed",
		"mail admin@example.org about it":                                    "mail admin@example.org about it",
		"no url here":                                                        "no url here",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(Text(in), "SECRET") {
			t.Errorf("Text(%q) keeps a secret", in)
		}
	}
}
