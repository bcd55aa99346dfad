package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"materializer/internal/articles"
)

// hostileEvents makes plan.each events of every hostile shape (plan.huge
// 30 MB ones), for articles of the normal traffic.
func hostileEvents(rng *rand.Rand, plan campaignPlan, normal []articles.Event) []hostile {
	var out []hostile
	n := 0
	add := func(shape, via, reason, cause string, body func(marker string) []byte) {
		n++
		marker := fmt.Sprintf("H%06d", n)
		out = append(out, hostile{shape: shape, marker: marker, raw: body(marker), reason: reason, cause: cause, via: via})
	}
	article := func() int { return normal[rng.IntN(len(normal))].Article }
	obj := func(marker string, id any, version any, rest string) []byte {
		return fmt.Appendf(nil, `{"hostile":%q,"metadata":{"eid":"%s","occurred_at":"2026-11-21T12:00:00Z"},"article_id":%s,"version":%s%s}`,
			marker, uuid(rng), jsonText(id), jsonText(version), rest)
	}
	sizes := func(k int, size string) string {
		return `,"sizes":[` + strings.Repeat(`{"size":"`+size+`","qty":1},`, k-1) + `{"size":"S","qty":1}]`
	}
	for range plan.each {
		add("row bomb", "publish", "limits.max_rows_per_event = 10000", "limit_rows", func(m string) []byte {
			return obj(m, article(), 7, `,"brand":"`+strings.Repeat("b", 200<<10)+`"`+sizes(20000, "S"))
		})
		add("decimal bomb", "publish", "limits.max_event_output_bytes = 16777216", "limit_bytes", func(m string) []byte {
			return obj(m, article(), 7, `,"price":{"amount":1e131071}`+sizes(200, "S"))
		})
		add("field bomb", "publish", "limits.max_field_bytes = 1048576", "limit_field", func(m string) []byte {
			return obj(m, article(), 7, `,"brand":"`+strings.Repeat("f", 2<<20)+`"`)
		})
		add("1M levels of nesting", "raw", "exceeded max depth", "parse", func(m string) []byte {
			return obj(m, article(), 7, `,"deep":`+strings.Repeat("[", 1<<20)+strings.Repeat("]", 1<<20))
		})
		add("invalid UTF-8", "raw", "invalid UTF-8", "utf8", func(m string) []byte {
			return obj(m, article(), 7, ",\"brand\":\"ok \xff\xfe bad \xc3\"")
		})
		add("10 KB key (article)", "publish", "is not an int", "type", func(m string) []byte {
			return obj(m, strings.Repeat("k", 10<<10), 7, "")
		})
		add("5000-digit version (article)", "publish", "is out of the int range", "type", func(m string) []byte {
			return obj(m, article(), json.Number("9"+strings.Repeat("0", 4999)), "")
		})
		add("random bytes", "raw", "invalid JSON", "parse", func(m string) []byte {
			return append([]byte(m), randomBytes(rng, 1+rng.IntN(4096))...)
		})
		add("truncated JSON", "raw", "invalid JSON", "parse", func(m string) []byte {
			full := obj(m, article(), 7, `,"brand":"trunc \"q\" \\ é","sizes":[{"size":"M","qty":2}]`)
			return truncate(full, 40+rng.IntN(len(full)-41))
		})
		add("non-object value", "raw", "not a JSON object", "parse", func(m string) []byte {
			return [][]byte{fmt.Appendf(nil, `[%q,1,{"a":null}]`, m), fmt.Appendf(nil, `%q`, m),
				fmt.Appendf(nil, `9%s`, m[1:])}[rng.IntN(3)]
		})
	}
	for range plan.huge {
		add("30 MB event", "raw", "limits.max_event_bytes = 8388608: rejected unparsed", "limit_event", func(m string) []byte {
			return obj(m, article(), 7, `,"brand":"`+strings.Repeat("h", 30<<20)+`"`)
		})
		// Just under max_event_bytes, and as dense as JSON gets: 4 million
		// values to index, parsed whole before a column rejects it.
		add("dense 8 MB event", "raw", "is not an int", "type", func(m string) []byte {
			return obj(m, "dense", 7, `,"a":[`+strings.Repeat("0,", 4<<20-100)+`0]`)
		})
	}
	// A bomb that is the newest version of its key: published after every
	// normal event, with a higher version than any.
	for range plan.each {
		add("bomb, newest version of its key", "publish", "limits.max_rows_per_event = 10000", "limit_rows", func(m string) []byte {
			return obj(m, article(), 1_000_000, sizes(10001, "N"))
		})
	}
	return out
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func uuid(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()>>16)
}

// randomBytes are bytes a batch line can carry as one event: any byte but
// JSON's structural ones, quotes, backslash and whitespace (they would end
// or break the line, which is not an event's doing).
func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		c := byte(0x21 + rng.IntN(0xff-0x21+1))
		if !strings.ContainsRune(`"{}[],\`, rune(c)) && c != 0x7f {
			b = append(b, c)
		}
	}
	return b
}

// truncate cuts a JSON object after n bytes and closes it as the line
// framing needs (strings terminated, brackets balanced) behind a trailing
// comma, so that the event stays invalid JSON.
func truncate(full []byte, n int) []byte {
	var stack []byte
	inString, escaped := false, false
	cut := full[:n]
	for _, c := range cut {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			stack = append(stack, c+2) // '{'+2 == '}', '['+2 == ']'
		case c == '}' || c == ']':
			stack = stack[:len(stack)-1]
		}
	}
	out := slices.Clone(cut)
	if escaped {
		out = out[:len(out)-1]
	}
	if inString {
		out = append(out, '"')
	}
	out = append(out, ',')
	for i := len(stack) - 1; i >= 0; i-- {
		out = append(out, stack[i])
	}
	return out
}

// keyEvent is an event of hostile.keys: a 10 KB key and its versions, the
// last two of 5000 digits.
type keyEvent struct {
	key     string
	version string
	raw     []byte
}

func keyEvents(rng *rand.Rand, keys int) []keyEvent {
	var out []keyEvent
	for k := range keys {
		key := fmt.Sprintf("K%04d-", k) + strings.Repeat(string(rune('a'+k%26)), 10<<10)
		for _, v := range []string{"1", "2", "3" + strings.Repeat("0", 4999), "3" + strings.Repeat("0", 4998) + "1"} {
			raw := fmt.Appendf(nil, `{"metadata":{"eid":"%s","occurred_at":"2026-11-21T12:00:00Z"},"key":%q,"version":%s}`, uuid(rng), key, v)
			out = append(out, keyEvent{key: key, version: v, raw: raw})
		}
	}
	// Interleave the keys, each key's versions in order.
	slices.SortStableFunc(out, func(a, b keyEvent) int { return strings.Compare(versionRank(a.version), versionRank(b.version)) })
	return out
}

func versionRank(v string) string { return fmt.Sprintf("%05d%s", len(v), v[:1]) }
