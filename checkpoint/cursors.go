package checkpoint

import (
	"strconv"
	"strings"

	"materializer/pipeline/nakadi"
)

// ResetPlan is how a restore moves one event type's subscription cursors
// so that Nakadi replays exactly what came after the checkpoint.
type ResetPlan struct {
	EventType string `json:"event_type"`
	// Cursors go to PATCH /subscriptions/{id}/cursors: the checkpoint's
	// applied offsets, or BEGIN (see Expired and read_from).
	Cursors []Cursor `json:"cursors"`
	// Expired partitions: the checkpoint's offset is older than the
	// oldest event Nakadi still has (retention). Their cursor goes to
	// BEGIN; the events in between are lost.
	Expired []Expired `json:"expired,omitempty"`
	// Untouched partitions: no applied offset in the checkpoint and
	// read_from = end; their subscription cursor stays.
	Untouched []string `json:"untouched,omitempty"`
}

// Expired is a partition whose checkpoint offset Nakadi no longer has.
type Expired struct {
	Partition string `json:"partition"`
	Offset    string `json:"offset"`
	Oldest    string `json:"oldest_available_offset"`
}

// PlanReset plans the cursor reset of one event type. partitions is
// Nakadi's GET /event-types/{name}/partitions (nil: unknown, every applied
// offset is reset as it is). A partition without an applied offset in the
// checkpoint had nothing applied: with read_from = begin it restarts at
// BEGIN (as the checkpointed daemon would have read it), with end its
// cursor is left alone.
func PlanReset(m *Manifest, eventType string, partitions []nakadi.PartitionOffsets, readFrom string) ResetPlan {
	plan := ResetPlan{EventType: eventType}
	applied := map[string]string{}
	for _, c := range m.Cursors {
		if c.EventType == eventType {
			applied[c.Partition] = c.Offset
		}
	}
	if partitions == nil {
		for _, c := range m.Cursors {
			if c.EventType == eventType {
				plan.Cursors = append(plan.Cursors, c)
			}
		}
		return plan
	}
	for _, p := range partitions {
		off, ok := applied[p.Partition]
		switch {
		case !ok && readFrom == "begin":
			off = nakadi.BeginOffset
		case !ok:
			plan.Untouched = append(plan.Untouched, p.Partition)
			continue
		case !available(off, p.Oldest):
			plan.Expired = append(plan.Expired, Expired{Partition: p.Partition, Offset: off, Oldest: p.Oldest})
			off = nakadi.BeginOffset
		}
		plan.Cursors = append(plan.Cursors, Cursor{EventType: eventType, Partition: p.Partition, Offset: off})
	}
	sortCursors(plan.Cursors)
	return plan
}

// available reports whether the event right after offset is still there,
// given the oldest available offset: offset >= oldest - 1.
func available(offset, oldest string) bool {
	if nakadi.CompareOffsets(offset, oldest) >= 0 {
		return true
	}
	op, on, ok1 := splitOffset(offset)
	pp, pn, ok2 := splitOffset(oldest)
	return ok1 && ok2 && op == pp && on+1 >= pn
}

// splitOffset splits a Nakadi offset "001-0001-000000000000000123" into
// its timeline prefix ("001-0001") and number (123); "001-0001--1" is -1.
func splitOffset(off string) (string, int64, bool) {
	i := strings.LastIndexByte(off, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(off[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	prefix := off[:i]
	if strings.HasSuffix(prefix, "-") {
		prefix, n = prefix[:len(prefix)-1], -n
	}
	return prefix, n, true
}
