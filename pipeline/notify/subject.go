package notify

import (
	"fmt"
	"strings"
)

// Subject is the subject of an event type's notices: {prefix}.{eventType}.
// Event type names contain dots, so they span several subject tokens;
// {prefix}.> sees every notice.
func Subject(prefix, eventType string) string { return prefix + "." + eventType }

// checkSubject accepts literal subjects: non-empty tokens, no wildcards,
// no whitespace.
func checkSubject(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty subject", ErrConfig)
	}
	if strings.ContainsAny(s, " \t\r\n*>") {
		return fmt.Errorf("%w: subject %q: no wildcards or whitespace allowed", ErrConfig, s)
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("%w: subject %q: empty token", ErrConfig, s)
		}
	}
	return nil
}

// subjectCovers reports whether every subject matching sub also matches
// the stream subject pattern pat (both may hold * and >).
func subjectCovers(pat, sub string) bool {
	pt, st := strings.Split(pat, "."), strings.Split(sub, ".")
	for i, s := range st {
		if i >= len(pt) {
			return false
		}
		p := pt[i]
		switch {
		case p == ">":
			return true
		case s == ">":
			return false
		case p == "*":
			continue
		case s == "*" || p != s:
			return false
		}
	}
	return len(pt) == len(st)
}
