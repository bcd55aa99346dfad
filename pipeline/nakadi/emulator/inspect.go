package emulator

import (
	"slices"
	"strconv"
)

// counters count requests per route and status. Guarded by Server.mu.
type counters struct {
	byRoute map[Route]map[int]int
}

func (c *counters) init() { c.byRoute = make(map[Route]map[int]int) }

func (s *Server) count(route Route, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.stats.byRoute[route]
	if m == nil {
		m = make(map[int]int)
		s.stats.byRoute[route] = m
	}
	m[status]++
}

// Requests returns how many requests of route were answered with status
// (0: with any status).
func (s *Server) Requests(route Route, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for st, c := range s.stats.byRoute[route] {
		if status == 0 || st == status {
			n += c
		}
	}
	return n
}

// Subscriptions returns the ids of all subscriptions.
func (s *Server) Subscriptions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.subs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Committed returns a subscription's committed cursors (none before it is
// initialized), in event type and partition order.
func (s *Server) Committed(subID string) []Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[subID]
	if sub == nil || !sub.initialized {
		return nil
	}
	var out []Cursor
	for _, k := range s.partitions(sub) {
		out = append(out, Cursor{EventType: k.et, Partition: strconv.Itoa(k.p), Offset: Offset(sub.committed[k])})
	}
	return out
}

// OpenStreams counts a subscription's sessions, streaming or closing (each
// holds a slot).
func (s *Server) OpenStreams(subID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.subs[subID]; sub != nil {
		return len(sub.sessions)
	}
	return 0
}

// Streams returns the ids of a subscription's streaming (not closing)
// sessions, oldest first.
func (s *Server) Streams(subID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	if sub := s.subs[subID]; sub != nil {
		for _, sess := range sub.sessions {
			if sess.state == stateStreaming {
				ids = append(ids, sess.id)
			}
		}
	}
	return ids
}

// Assignment maps "event_type/partition" to the id of the stream that owns
// the partition (absent when unassigned).
func (s *Server) Assignment(subID string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	if sub := s.subs[subID]; sub != nil {
		for k, o := range sub.owner {
			out[k.String()] = o.id
		}
	}
	return out
}

// Reassigning maps "event_type/partition" to the id of the stream a
// partition moves to once its owner committed what it was sent (docs/nakadi.md §6.2).
func (s *Server) Reassigning(subID string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	if sub := s.subs[subID]; sub != nil {
		for k, t := range sub.target {
			out[k.String()] = t.id
		}
	}
	return out
}

// SentEvents counts the events of a partition sent on streams, re-sends
// included.
func (s *Server) SentEvents(eventType string, partition int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, err := s.partition(eventType, partition); err == nil {
		return p.sent
	}
	return 0
}

// Events returns the stored (enriched) events of a partition that are still
// retained, oldest first.
func (s *Server) Events(eventType string, partition int) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.partition(eventType, partition)
	if err != nil {
		return nil
	}
	out := make([][]byte, len(p.events))
	for i, e := range p.events {
		out[i] = e.data
	}
	return out
}

// NewestOffset returns the offset of a partition's newest event.
func (s *Server) NewestOffset(eventType string, partition int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, err := s.partition(eventType, partition); err == nil {
		return Offset(p.newest())
	}
	return ""
}

// Grant is one hand-out of a partition to a stream: the stream was sent the
// events after offset From (the committed offset when it got the
// partition, or where retention had moved it), up to Sent so far. Offsets
// count a partition's events from 0, and From is -1 before the first.
type Grant struct {
	EventType string
	Partition int
	Stream    string
	From      int64
	Sent      int64
}

// Grants returns every hand-out of a subscription's partitions to its
// streams, in the order they happened.
func (s *Server) Grants(subID string) []Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Grant
	if sub := s.subs[subID]; sub != nil {
		for _, g := range sub.grants {
			out = append(out, *g)
		}
	}
	return out
}

// StoredEvent is a retained event with its offset.
type StoredEvent struct {
	Offset int64
	Data   []byte
}

// Stored returns the retained (enriched) events of a partition with their
// offsets, oldest first.
func (s *Server) Stored(eventType string, partition int) []StoredEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.partition(eventType, partition)
	if err != nil {
		return nil
	}
	out := make([]StoredEvent, len(p.events))
	for i, e := range p.events {
		out[i] = StoredEvent{Offset: e.off, Data: e.data}
	}
	return out
}
