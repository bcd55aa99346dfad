package checkpoint

import (
	"fmt"
	"slices"
	"strings"
)

// Compare names every difference between what shaped the checkpoint's
// state and the configured event types (Name, Fingerprint as
// pipeline.Fingerprint computes it from the config, Tables): event types
// present on one side only, partition key, ordering key, ordering, and
// each table's columns. A nil error means the config can run on the
// restored state.
func Compare(m *Manifest, configured []EventType) error {
	var diffs []string
	seen := map[string]bool{}
	for _, c := range configured {
		seen[c.Name] = true
		ck, ok := m.EventType(c.Name)
		if !ok {
			diffs = append(diffs, fmt.Sprintf("event type %s is configured but not in the checkpoint", c.Name))
			continue
		}
		for _, d := range diffFingerprint(ck.Fingerprint, c.Fingerprint) {
			diffs = append(diffs, fmt.Sprintf("event type %s: %s", c.Name, d))
		}
		for _, d := range diffTables(ck.Tables, c.Tables) {
			diffs = append(diffs, fmt.Sprintf("event type %s: %s", c.Name, d))
		}
	}
	for _, et := range m.EventTypes {
		if !seen[et.Name] {
			diffs = append(diffs, fmt.Sprintf("event type %s is in the checkpoint but not configured", et.Name))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w %s:\n  %s", ErrMismatch, m.ID, strings.Join(diffs, "\n  "))
}

// diffFingerprint compares two "key=value" line lists (pipeline.Fingerprint).
func diffFingerprint(ck, cfg string) []string {
	a, b := fields(ck), fields(cfg)
	var out []string
	for _, k := range keysOf(a, b) {
		if a[k] != b[k] {
			out = append(out, fmt.Sprintf("%s is %q in the checkpoint, the config says %q", k, a[k], b[k]))
		}
	}
	return out
}

// fields splits "k=v\n" lines into a map.
func fields(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// keysOf lists the keys of both maps in a stable order: the usual ones
// first, then the rest sorted.
func keysOf(a, b map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range []string{"partition_key", "ordering_key", "ordering"} {
		out, seen[k] = append(out, k), true
	}
	var rest []string
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if !seen[k] {
				rest, seen[k] = append(rest, k), true
			}
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// diffTables compares tables by name: missing on a side, or other columns.
func diffTables(ck, cfg []Table) []string {
	var out []string
	byName := map[string]Table{}
	for _, t := range ck {
		byName[t.Name] = t
	}
	for _, t := range cfg {
		c, ok := byName[t.Name]
		delete(byName, t.Name)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("table %s is configured but not in the checkpoint", t.Name))
		case strings.Join(c.Columns, ",") != strings.Join(t.Columns, ","):
			out = append(out, fmt.Sprintf("table %s has columns [%s] in the checkpoint, the config says [%s]",
				t.Name, strings.Join(c.Columns, " "), strings.Join(t.Columns, " ")))
		}
	}
	for _, t := range ck {
		if _, left := byName[t.Name]; left {
			out = append(out, fmt.Sprintf("table %s is in the checkpoint but not configured", t.Name))
		}
	}
	return out
}
