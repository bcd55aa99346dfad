package flatten

import (
	"errors"
	"fmt"
	"math"
)

// Limits bound what one event may cost (docs/mapping.md#limits), so that
// no single event can make its reader take more than a configured amount
// of memory: an exploded array of 20 000 elements with a 200 KB string
// beside it would otherwise write 4 GB of CSV, and a decimal like 1e131071
// expands to 128 KB of digits. A zero field is no limit.
//
// Rows, OutputBytes and FieldBytes are checked while the rows are built,
// before the memory for what exceeds them is taken; EventBytes is the
// caller's to check before Parse (CheckEventBytes; WriteNDJSON does).
type Limits struct {
	EventBytes  int // the event's own JSON text
	Rows        int // rows of all tables of the event
	OutputBytes int // CSV bytes of all tables' rows of the event
	FieldBytes  int // one field's CSV text (quotes included)
}

// The limits by their configuration keys, which errors name.
const (
	LimitEventBytes  = "limits.max_event_bytes"
	LimitRows        = "limits.max_rows_per_event"
	LimitOutputBytes = "limits.max_event_output_bytes"
	LimitFieldBytes  = "limits.max_field_bytes"
)

// LimitError says which limit an event exceeds, naming its key and value.
type LimitError struct {
	Limit  string // LimitRows, LimitOutputBytes, LimitFieldBytes or LimitEventBytes
	Max    int
	Table  string // where it was exceeded ("" for LimitEventBytes)
	Column string // LimitFieldBytes only
	Size   int    // LimitEventBytes only: the event's size
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case LimitRows:
		return fmt.Sprintf("table %s: more than %d rows (%s = %d)", e.Table, e.Max, e.Limit, e.Max)
	case LimitOutputBytes:
		return fmt.Sprintf("table %s: the event's rows exceed %d bytes of CSV (%s = %d)", e.Table, e.Max, e.Limit, e.Max)
	case LimitFieldBytes:
		return fmt.Sprintf("table %s column %s: a field longer than %d bytes (%s = %d)", e.Table, e.Column, e.Max, e.Limit, e.Max)
	}
	return fmt.Sprintf("event of %d bytes exceeds %s = %d: rejected unparsed", e.Size, e.Limit, e.Max)
}

// CheckEventBytes returns a *LimitError when the event is longer than
// l.EventBytes: such an event is rejected without being parsed.
func CheckEventBytes(event []byte, l Limits) error {
	if l.EventBytes > 0 && len(event) > l.EventBytes {
		return &LimitError{Limit: LimitEventBytes, Max: l.EventBytes, Size: len(event)}
	}
	return nil
}

// WithLimits returns a copy of the mapping that enforces l (see Limits).
func (m *Mapping) WithLimits(l Limits) *Mapping {
	c := *m
	c.limits = l
	return &c
}

// Limits returns the limits the mapping enforces.
func (m *Mapping) Limits() Limits { return m.limits }

// Causes name why an event is rejected, in a small fixed set (metrics
// label their counts with it; docs/operations.md).
const (
	CauseParse      = "parse"       // not a JSON object
	CauseUTF8       = "utf8"        // invalid UTF-8 in a string
	CauseType       = "type"        // a value a column's type does not take (U+0000, leap seconds, ranges included)
	CauseRequired   = "required"    // a required value missing or null
	CauseLimitRows  = "limit_rows"  // limits.max_rows_per_event
	CauseLimitBytes = "limit_bytes" // limits.max_event_output_bytes
	CauseLimitField = "limit_field" // limits.max_field_bytes
	CauseLimitEvent = "limit_event" // limits.max_event_bytes
)

// limitCauses maps a LimitError's limit to its cause.
var limitCauses = map[string]string{LimitRows: CauseLimitRows, LimitOutputBytes: CauseLimitBytes,
	LimitFieldBytes: CauseLimitField, LimitEventBytes: CauseLimitEvent}

// Cause names why err (from Parse, Validate, AppendRows or
// CheckEventBytes) rejects an event: one of the Cause* values, "" for
// another error.
func Cause(err error) string {
	var (
		pe *ParseError
		re *RejectError
		le *LimitError
	)
	switch {
	case errors.As(err, &pe) && pe.Reason == reasonUTF8:
		return CauseUTF8
	case errors.As(err, &pe):
		return CauseParse
	case errors.As(err, &re) && re.Required:
		return CauseRequired
	case errors.As(err, &re):
		return CauseType
	case errors.As(err, &le):
		return limitCauses[le.Limit]
	}
	return ""
}

// budget is what the rows of one event may still take; math.MaxInt is no
// limit (so a check is one comparison).
type budget struct {
	rows, bytes, field int
}

// cost is what rows took so far.
type cost struct {
	rows, bytes int
}

// budgetFor returns the budget left after used.
func (l Limits) budgetFor(used cost) budget {
	b := budget{rows: math.MaxInt, bytes: math.MaxInt, field: math.MaxInt}
	if l.Rows > 0 {
		b.rows = l.Rows - used.rows
	}
	if l.OutputBytes > 0 {
		b.bytes = l.OutputBytes - used.bytes
	}
	if l.FieldBytes > 0 {
		b.field = l.FieldBytes
	}
	return b
}
