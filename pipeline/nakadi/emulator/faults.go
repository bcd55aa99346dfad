package emulator

import (
	"fmt"
	"time"
)

// Route names an endpoint, for fault hooks and request counters.
type Route string

// Routes of the emulator.
const (
	RoutePublish            Route = "publish"             // POST /event-types/{name}/events
	RoutePartitions         Route = "partitions"          // GET /event-types/{name}/partitions
	RouteCreateSubscription Route = "create-subscription" // POST /subscriptions
	RouteGetSubscription    Route = "get-subscription"    // GET /subscriptions/{id}
	RouteDeleteSubscription Route = "delete-subscription" // DELETE /subscriptions/{id}
	RouteStream             Route = "stream"              // GET|POST /subscriptions/{id}/events
	RouteCommit             Route = "commit"              // POST /subscriptions/{id}/cursors
	RouteGetCursors         Route = "get-cursors"         // GET /subscriptions/{id}/cursors
	RoutePatchCursors       Route = "patch-cursors"       // PATCH /subscriptions/{id}/cursors
	RouteStats              Route = "stats"               // GET /subscriptions/{id}/stats
)

// fault is what happens to one request.
type fault struct {
	status     int
	retryAfter time.Duration
	delay      time.Duration
}

// faults holds the armed fault hooks. Guarded by Server.mu.
type faults struct {
	fail  map[Route][]fault
	delay map[Route][]time.Duration
	// cutNext cuts the next stream opened after that many events (0: off).
	cutNext int
	// dup duplicates the next event batch of a partition.
	dup map[pkey]int
	// names replaces a partition's id in the lines streamed.
	names map[pkey]string
}

type publishFaultKey struct{}

// FailNext makes the next k requests of route answer status (a Problem;
// with Retry-After when retryAfter > 0). For RoutePublish, 207 publishes the
// first half of the batch and fails the rest, and 422 rejects the batch,
// both with BatchItemResponse bodies.
func (s *Server) FailNext(route Route, k int, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.fail == nil {
		s.faults.fail = make(map[Route][]fault)
	}
	for range k {
		s.faults.fail[route] = append(s.faults.fail[route], fault{status: status, retryAfter: retryAfter})
	}
}

// DelayNext delays the next k requests of route by d before they are
// handled (for a stream: before the response starts).
func (s *Server) DelayNext(route Route, k int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.delay == nil {
		s.faults.delay = make(map[Route][]time.Duration)
	}
	for range k {
		s.faults.delay[route] = append(s.faults.delay[route], d)
	}
}

// takeFault pops the armed fault of one request.
func (s *Server) takeFault(route Route) fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f fault
	if q := s.faults.delay[route]; len(q) > 0 {
		f.delay, s.faults.delay[route] = q[0], q[1:]
	}
	if q := s.faults.fail[route]; len(q) > 0 {
		f.status, f.retryAfter = q[0].status, q[0].retryAfter
		s.faults.fail[route] = q[1:]
	}
	return f
}

// CutNextStreamAfter cuts the connection of the next stream that opens
// (without ending the chunked body: the client sees an unexpected EOF)
// once it has sent at least n events. The session then gets the closing
// window, as when a client's connection drops.
func (s *Server) CutNextStreamAfter(n int) {
	s.mu.Lock()
	s.faults.cutNext = max(n, 1)
	s.mu.Unlock()
}

// CutStream cuts an open stream's connection now (unexpected EOF for the
// client; the session gets the closing window).
func (s *Server) CutStream(streamID string) error {
	return s.withSession(streamID, func(sess *session) {
		sess.cut = true
		sess.wakeUp()
	})
}

// DuplicateNextBatch sends the next event batch of the partition twice.
func (s *Server) DuplicateNextBatch(eventType string, partition int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.dup == nil {
		s.faults.dup = make(map[pkey]int)
	}
	s.faults.dup[pkey{eventType, partition}]++
}

// ServePartitionAs makes the lines of a partition carry id as their
// cursor's partition instead of its number, as a broken or hostile Nakadi
// (or proxy) would; commits of that id are refused (422, unknown
// partition). An empty id undoes it.
func (s *Server) ServePartitionAs(eventType string, partition int, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.names == nil {
		s.faults.names = make(map[pkey]string)
	}
	if id == "" {
		delete(s.faults.names, pkey{eventType, partition})
		return
	}
	s.faults.names[pkey{eventType, partition}] = id
}

// AppendRaw stores events in a partition as they are: not validated, not
// enriched, as no real producer could (Nakadi validates events), to test
// what a consumer does with any bytes a batch line can carry. They go into
// the line verbatim, so they must keep it one batch line: no newline,
// balanced brackets, terminated strings.
func (s *Server) AppendRaw(eventType string, partition int, events ...[]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.partition(eventType, partition)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	for _, ev := range events {
		p.append(ev, now, s.opts.RetainEvents)
	}
	for _, sub := range s.subs {
		if sub.reads(eventType) {
			for _, sess := range sub.sessions {
				sess.wakeUp()
			}
		}
	}
	return nil
}

// InjectGap makes the partition skip n offsets before its next event (as
// compaction or per-event authorization do).
func (s *Server) InjectGap(eventType string, partition, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.partition(eventType, partition)
	if err != nil {
		return err
	}
	p.next += int64(n)
	return nil
}

// ForceCommitTimeout ends the stream as if its commit timeout passed: info
// "Commit timeout reached", then the session is gone (no closing window;
// later commits get 422) and its uncommitted events are re-sent.
func (s *Server) ForceCommitTimeout(streamID string) error {
	return s.withSession(streamID, func(sess *session) {
		s.endSession(sess, "Commit timeout reached")
	})
}

// CloseStream ends a stream on demand. With window it closes like a stream
// timeout (the connection stays open, silent, while events are uncommitted,
// for the rest of the commit timeout); without, like a node shutdown (the
// body ends at once and the session is gone: commits get 422).
func (s *Server) CloseStream(streamID string, window bool) error {
	return s.withSession(streamID, func(sess *session) {
		if window {
			s.closeWithWindow(sess, "")
		} else {
			s.endSession(sess, "")
		}
	})
}

// withSession runs f on an open session under the lock.
func (s *Server) withSession(streamID string, f func(*session)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		for _, sess := range sub.sessions {
			if sess.id == streamID && sess.state != stateGone {
				f(sess)
				return nil
			}
		}
	}
	return fmt.Errorf("emulator: no open stream %q", streamID)
}
