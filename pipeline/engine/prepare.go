package engine

import (
	"fmt"
	"math"

	"materializer/pipeline/compact"
	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
)

// job is one Nakadi batch on its way from the consumer to the state writer.
// Workers prepare jobs in parallel; the writer takes them in arrival order.
type job struct {
	b      *nakadi.Batch
	et     *eventType // nil when the batch's event type is not configured
	events []prepared
	arena  []byte // keys, ordering values and eids of all events
	tmp    []byte // text being re-encoded into the arena
	done   chan struct{}
	big    chan struct{} // held while a big event is parsed (bigEvent)
}

// bigEvent is the size from which an event is parsed by one worker at a
// time, and that worker's parser dropped right after: a parsed event's
// index can take ten times the event's size (20 bytes a value), and the
// workers must not hold several such at once.
const bigEvent = 1 << 20

// prepared is what the writer needs of one event, computed off the writer's
// goroutine: parsed once, key and ordering extracted, every column checked.
type prepared struct {
	key, order, eid span
	occurred        int64  // unix ns of metadata.occurred_at, 0 when unknown
	reject          string // why the event is rejected; "" when it is not
	cause           string // the reject's cause, a metric label (flatten.Cause*, causeMissingKey, causeOrdering)
}

// Causes of rejections the engine finds itself (besides flatten's).
const (
	causeMissingKey = "missing_key" // a partition key component missing or null
	causeOrdering   = "ordering"    // the ordering key missing or not of its ordering's kind
)

type span struct{ start, end int32 }

func (j *job) bytes(s span) []byte { return j.arena[s.start:s.end] }

// prepare parses and checks every event of the job with the worker's own
// parser.
func (j *job) prepare(p *flatten.Parser) {
	if j.et == nil || j.b.Lost {
		return
	}
	j.events = make([]prepared, len(j.b.Events))
	for i, raw := range j.b.Events {
		j.prepareOne(p, i, raw)
	}
}

func (j *job) prepareOne(p *flatten.Parser, i int, raw []byte) {
	ev := &j.events[i]
	et := j.et
	limits := et.Mapping.Limits()
	if err := flatten.CheckEventBytes(raw, limits); err != nil {
		ev.reject, ev.cause = err.Error(), flatten.Cause(err)
		return
	}
	if len(raw) > bigEvent && j.big != nil {
		j.big <- struct{}{}
		defer func() { p.Shrink(); <-j.big }()
	}
	doc, err := p.Parse(raw)
	if err != nil {
		ev.reject, ev.cause = err.Error(), flatten.Cause(err)
		return
	}
	mark := len(j.arena)
	j.arena = doc.Lookup(et.EIDPath).AppendText(j.arena)
	ev.eid = j.spanFrom(mark)
	mark = len(j.arena)
	for k, path := range et.PartitionKey {
		v := doc.Lookup(path)
		if v.IsMissing() {
			ev.reject, ev.cause = fmt.Sprintf("partition_key %s is missing", et.keyNames[k]), causeMissingKey
			return
		}
		j.tmp = v.AppendText(j.tmp[:0])
		j.arena = compact.AppendKeyPart(j.arena, j.tmp)
	}
	ev.key = j.spanFrom(mark)
	if ev.reject, ev.cause = tooLong("partition_key", j.bytes(ev.key), limits); ev.reject != "" {
		return
	}
	mark = len(j.arena)
	if reason := j.appendOrder(doc, i); reason != "" {
		ev.reject, ev.cause = reason, causeOrdering
		return
	}
	ev.order = j.spanFrom(mark)
	if ev.reject, ev.cause = tooLong("ordering_key", j.bytes(ev.order), limits); ev.reject != "" {
		return
	}
	if v := doc.Lookup(et.OccurredPath); v.Kind() == flatten.KindString {
		j.tmp = v.AppendText(j.tmp[:0])
		ev.occurred = parseOccurred(j.tmp)
	}
	if err := et.Mapping.Validate(doc); err != nil {
		ev.reject, ev.cause = err.Error(), flatten.Cause(err)
	}
}

// tooLong rejects a partition key or ordering value longer than
// limits.max_field_bytes: it becomes a Pebble key and part of every key
// state, so it is held to the limit of one field.
func tooLong(what string, v []byte, l flatten.Limits) (reason, cause string) {
	if l.FieldBytes > 0 && len(v) > l.FieldBytes {
		return fmt.Sprintf("%s of %d bytes is longer than %s = %d", what, len(v), flatten.LimitFieldBytes, l.FieldBytes),
			flatten.CauseLimitField
	}
	return "", ""
}

func (j *job) spanFrom(mark int) span { return span{int32(mark), int32(len(j.arena))} }

// appendOrder appends the encoded ordering value of event i, or returns why
// it has none.
func (j *job) appendOrder(doc *flatten.Doc, i int) string {
	et := j.et
	if et.Ordering == compact.Arrival {
		j.arena = compact.AppendArrival(j.arena, j.b.Cursor.Offset, i)
		return ""
	}
	v := doc.Lookup(et.OrderingKey)
	kind := v.Kind()
	if v.IsMissing() {
		return fmt.Sprintf("ordering_key %s is missing", et.OrderingKey)
	}
	var err error
	switch et.Ordering {
	case compact.Number:
		if kind != flatten.KindNumber && kind != flatten.KindString {
			return fmt.Sprintf("ordering_key %s: %s is not a number", et.OrderingKey, kind)
		}
		j.tmp = v.AppendText(j.tmp[:0])
		j.arena, err = compact.AppendNumber(j.arena, j.tmp)
	case compact.Timestamp:
		if kind != flatten.KindString {
			return fmt.Sprintf("ordering_key %s: %s is not a timestamp", et.OrderingKey, kind)
		}
		j.tmp = v.AppendText(j.tmp[:0])
		j.arena, err = compact.AppendTimestamp(j.arena, j.tmp)
	case compact.String:
		if kind != flatten.KindString {
			return fmt.Sprintf("ordering_key %s: %s is not a string", et.OrderingKey, kind)
		}
		j.arena = v.AppendText(j.arena)
	}
	if err != nil {
		return fmt.Sprintf("ordering_key %s: %s %v", et.OrderingKey, truncate(v.Raw(), 64), err)
	}
	return ""
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// parseOccurred returns a timestamp as unix nanoseconds, 0 (unknown) when
// it is not one, or when it lies outside what int64 nanoseconds hold
// (1677-09-21 to 2262-04-11): such an occurred_at does not widen a file's
// min/max_occurred_at (docs/files-and-notices.md), rather than wrapping
// around into a garbage instant.
func parseOccurred(text []byte) int64 {
	sec, nsec, ok := compact.ParseTimestamp(text)
	if !ok || sec < math.MinInt64/int64(1e9)-1 || sec > math.MaxInt64/int64(1e9) {
		return 0
	}
	ns := sec*1e9 + int64(nsec) // wraps at the edges of the seconds allowed
	if sec < 0 && ns > 0 || sec > 0 && ns < 0 {
		return 0
	}
	return ns
}
