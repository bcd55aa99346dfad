// Package redact hides credentials before a URL reaches a message (a config
// problem, a log line, an error): the userinfo of a URL — user:password@ or
// a bare token@ — becomes "xxxxx". It errs on the side of hiding: everything
// between the scheme's "://" and the last '@' goes, whether or not the URL
// parses.
package redact

import (
	"regexp"
	"strings"
)

// Mask replaces the userinfo.
const Mask = "xxxxx"

// URL returns s, a URL or a comma-separated list of URLs (NATS), with the
// userinfo of each one masked: "nats://u:pw@h1:4222,nats://tok@h2" becomes
// "nats://xxxxx@h1:4222,nats://xxxxx@h2". A piece without "://" is masked
// from its start to its last '@' ("u:pw@host" becomes "xxxxx@host").
func URL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	pieces := strings.Split(s, ",")
	for i, p := range pieces {
		pieces[i] = piece(p)
	}
	return strings.Join(pieces, ",")
}

func piece(p string) string {
	at := strings.LastIndexByte(p, '@')
	if at < 0 {
		return p
	}
	start := 0
	if i := strings.Index(p, "://"); i >= 0 && i < at {
		start = i + 3
	}
	return p[:start] + Mask + p[at:]
}

// inText finds scheme://…@ in free text: up to the last '@' before a space,
// a quote or an angle bracket.
var inText = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^\s"'<>` + "`" + `]*@`)

// Text masks the userinfo of every URL with a scheme in free text, such as
// an error message that quotes a URL (`Get "https://tok@host/": ...`).
func Text(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return inText.ReplaceAllString(s, "${1}"+Mask+"@")
}
