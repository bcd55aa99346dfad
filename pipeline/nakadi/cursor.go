package nakadi

import (
	"cmp"
	"strings"
)

// Cursor is a subscription cursor: the position of one event (for a batch,
// its last event) in one partition of one event type. Offsets are opaque;
// within one partition they compare as strings (see CompareOffsets).
type Cursor struct {
	EventType   string `json:"event_type"`
	Partition   string `json:"partition"`
	Offset      string `json:"offset"`
	CursorToken string `json:"cursor_token"`
}

// PartitionKey names one partition of one event type.
type PartitionKey struct {
	EventType string
	Partition string
}

// Key returns the cursor's partition key.
func (c Cursor) Key() PartitionKey { return PartitionKey{c.EventType, c.Partition} }

// BeginOffset is the special offset before the oldest available event.
const BeginOffset = "BEGIN"

// ComparePartitions orders partition ids numerically when they are numbers
// (shorter first, then bytewise), as Nakadi lists them. It returns -1, 0 or
// +1.
func ComparePartitions(a, b string) int {
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return strings.Compare(a, b)
}

// CompareOffsets compares two offsets of the same partition the way Nakadi
// does: lexicographically, with BEGIN (any case) lower than everything else.
// It returns -1, 0 or +1.
func CompareOffsets(a, b string) int {
	ab, bb := strings.EqualFold(a, BeginOffset), strings.EqualFold(b, BeginOffset)
	switch {
	case ab && bb:
		return 0
	case ab:
		return -1
	case bb:
		return 1
	}
	return strings.Compare(a, b)
}

// offsetNumber returns the numeric Kafka offset at the end of a Nakadi offset
// ("001-0001-000000000000000123" → 123, "001-0001--1" → -1), for metrics.
// ok is false for BEGIN and for offsets of another shape.
func offsetNumber(off string) (n int64, ok bool) {
	i := strings.LastIndexByte(off, '-')
	digits := off[i+1:]
	neg := i > 0 && off[i-1] == '-'
	if digits == "" || len(digits) > 18 {
		return 0, false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
