package emulator

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Categories of event types (docs/nakadi.md §2.1).
const (
	CategoryBusiness  = "business"
	CategoryData      = "data"
	CategoryUndefined = "undefined"
)

// EventType describes an event type to create.
type EventType struct {
	Name       string
	Partitions int
	// PartitionKeyFields selects the hash strategy: events with equal values
	// go to the same partition. Paths are dotted; for the data category they
	// are relative to "data". Empty means round robin ("random").
	PartitionKeyFields []string
	// Category is business (default), data or undefined. Undefined events
	// are neither validated nor enriched.
	Category string
}

// pkey names one partition of one event type.
type pkey struct {
	et string
	p  int
}

func (k pkey) String() string { return k.et + "/" + strconv.Itoa(k.p) }

type eventType struct {
	EventType
	parts []*partition
	rr    int
}

// partition is the stored log of one partition.
type partition struct {
	events []stored // ascending offsets
	next   int64    // offset of the next event
	sent   int      // events sent on streams, re-sends included
}

type stored struct {
	off      int64
	data     []byte
	received time.Time
}

// CreateEventType creates an event type (business category).
func (s *Server) CreateEventType(name string, partitions int, partitionKeyFields []string) error {
	return s.AddEventType(EventType{Name: name, Partitions: partitions, PartitionKeyFields: partitionKeyFields})
}

// AddEventType creates an event type.
func (s *Server) AddEventType(et EventType) error {
	if et.Name == "" || et.Partitions < 1 {
		return fmt.Errorf("emulator: event type needs a name and at least one partition")
	}
	if et.Category == "" {
		et.Category = CategoryBusiness
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.eventTypes[et.Name]; ok {
		return fmt.Errorf("emulator: event type %q exists", et.Name)
	}
	t := &eventType{EventType: et, parts: make([]*partition, et.Partitions)}
	for i := range t.parts {
		t.parts[i] = &partition{}
	}
	s.eventTypes[et.Name] = t
	return nil
}

// partition returns a partition; called with s.mu held.
func (s *Server) partition(eventType string, p int) (*partition, error) {
	t := s.eventTypes[eventType]
	if t == nil || p < 0 || p >= len(t.parts) {
		return nil, fmt.Errorf("emulator: no partition %s/%d", eventType, p)
	}
	return t.parts[p], nil
}

// after returns the index in events of the first event with offset > off.
func (p *partition) after(off int64) int {
	return sort.Search(len(p.events), func(i int) bool { return p.events[i].off > off })
}

// count returns the number of stored events with from < offset ≤ to.
func (p *partition) count(from, to int64) int {
	if to <= from {
		return 0
	}
	return p.after(to) - p.after(from)
}

// beforeOldest is the offset just before the oldest available event.
func (p *partition) beforeOldest() int64 {
	if len(p.events) > 0 {
		return p.events[0].off - 1
	}
	return p.next - 1
}

// newest is the offset of the newest event (-1 if none ever).
func (p *partition) newest() int64 { return p.next - 1 }

// append stores an event and applies the retention cap.
func (p *partition) append(data []byte, now time.Time, retain int) {
	p.events = append(p.events, stored{off: p.next, data: data, received: now})
	p.next++
	if retain > 0 && len(p.events) > retain {
		drop := len(p.events) - retain
		p.events = p.events[drop:]
		if cap(p.events) > 4*len(p.events)+1024 {
			p.events = slices.Clone(p.events)
		}
	}
}

// Offset formats an offset the way Nakadi does: 001-0001-%018d, and
// 001-0001--1 before the first event.
func Offset(n int64) string {
	if n < 0 {
		return "001-0001--1"
	}
	return fmt.Sprintf("001-0001-%018d", n)
}

// parseOffset reads a Nakadi offset (also BEGIN and plain numbers). begin
// is the value BEGIN stands for.
func parseOffset(s string, begin int64) (int64, bool) {
	switch {
	case len(s) == 5 && (s == "BEGIN" || s == "begin" || s == "Begin"):
		return begin, true
	case s == "001-0001--1":
		return -1, true
	case len(s) == 27 && s[:9] == "001-0001-":
		s = s[9:]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < -1 {
		return 0, false
	}
	return n, true
}

// hashPartition picks the partition of an event from its key values.
func hashPartition(keys [][]byte, partitions int) int {
	h := fnv.New32a()
	for _, k := range keys {
		_, _ = h.Write(k)
		_, _ = h.Write([]byte{0})
	}
	return int(h.Sum32() % uint32(partitions))
}
