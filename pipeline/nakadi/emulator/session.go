package emulator

import (
	"slices"
	"strconv"
	"time"
)

type sessState int

const (
	stateStreaming sessState = iota
	stateClosing             // no data; commits allowed for the rest of the commit timeout
	stateGone
)

// params are the stream parameters (docs/nakadi.md §4.1).
type params struct {
	batchLimit     int
	flush          time.Duration
	maxUncommitted int
	commitTimeout  time.Duration
	streamTimeout  time.Duration
	streamLimit    int
	keepAliveLimit int
}

// session is one stream of a subscription. Guarded by Server.mu.
type session struct {
	id    string
	sub   *subscription
	prm   params
	state sessState
	start time.Time
	parts map[pkey]*sessPart
	// commitClock starts when the stream goes from all committed to
	// something uncommitted and restarts on every commit that moves an
	// offset (docs/nakadi.md §5); zero while nothing is uncommitted.
	commitClock  time.Time
	noPartsSince time.Time
	infos        []lineSpec // info lines to send before anything else
	firstSent    bool
	cut          bool // abort the connection at the next look
	cutAfter     int  // abort once this many events were sent (0: off)
	eventsSent   int
	committedEv  int
	wake         chan struct{}
	handlerDone  chan struct{} // closed when the HTTP handler returned
}

// sessPart is one partition assigned to a session.
type sessPart struct {
	sent       int64 // offset of the last event sent
	lastFlush  time.Time
	keepAlives int    // keep-alives in a row
	info       string // to attach to the partition's next line
	grant      *Grant // the record of this hand-out (Grants)
}

// lineSpec is one line to write: a batch, a keep-alive or an info line.
type lineSpec struct {
	k      pkey
	off    int64
	events [][]byte
	info   string
	name   string // the partition id to send instead of k's number (ServePartitionAs)
}

func (sess *session) wakeUp() {
	select {
	case sess.wake <- struct{}{}:
	default:
	}
}

// uncommitted counts events sent on the session and not committed.
func (s *Server) uncommitted(sess *session) int {
	n := 0
	for k, sp := range sess.parts {
		n += s.eventTypes[k.et].parts[k.p].count(sess.sub.committed[k], sp.sent)
	}
	return n
}

// give assigns a partition to a session, starting after the committed
// offset (skipping what expired meanwhile, with the info Nakadi sends).
func (s *Server) give(sub *subscription, k pkey, sess *session, now time.Time) {
	part := s.eventTypes[k.et].parts[k.p]
	sp := &sessPart{sent: sub.committed[k], lastFlush: now}
	if oldest := part.beforeOldest(); sp.sent < oldest {
		sp.info = "skipped events due to retention time passed, count: " + itoa(oldest-sp.sent)
		sp.sent = oldest
	}
	sp.grant = &Grant{EventType: k.et, Partition: k.p, Stream: sess.id, From: sp.sent, Sent: sp.sent}
	sub.grants = append(sub.grants, sp.grant)
	sub.owner[k] = sess
	sess.parts[k] = sp
	sess.noPartsSince = time.Time{}
	sess.wakeUp()
}

// rebalance spreads the partitions evenly over the streaming sessions,
// keeping current owners within their share (docs/nakadi.md §6.1). Partitions that
// must move are marked reassigning and handed over once committed (docs/nakadi.md §6.2).
func (s *Server) rebalance(sub *subscription, now time.Time) {
	parts := s.partitions(sub)
	var active []*session
	for _, sess := range sub.sessions {
		if sess.state == stateStreaming {
			active = append(active, sess)
		}
	}
	if len(active) == 0 {
		clear(sub.target)
		clear(sub.reassigned)
		return
	}
	quota := make(map[*session]int, len(active))
	for i, sess := range active {
		quota[sess] = len(parts) / len(active)
		if i < len(parts)%len(active) {
			quota[sess]++
		}
	}
	want := make(map[pkey]*session, len(parts))
	held := make(map[*session]int, len(active))
	for _, k := range parts {
		cur := sub.owner[k]
		if t := sub.target[k]; t != nil {
			cur = t
		}
		if cur != nil && cur.state == stateStreaming && held[cur] < quota[cur] {
			want[k] = cur
			held[cur]++
		}
	}
	for _, k := range parts {
		if want[k] != nil {
			continue
		}
		for _, sess := range active {
			if held[sess] < quota[sess] {
				want[k] = sess
				held[sess]++
				break
			}
		}
	}
	for _, k := range parts {
		switch owner := sub.owner[k]; {
		case owner == nil:
			delete(sub.target, k)
			s.give(sub, k, want[k], now)
		case owner == want[k]:
			delete(sub.target, k)
			delete(sub.reassigned, k)
		case sub.target[k] != want[k]:
			sub.target[k] = want[k]
			sub.reassigned[k] = now
			owner.wakeUp()
		}
	}
	s.handover(sub, now)
}

// handover moves every reassigning partition whose owner has committed all
// it was sent (or is gone) to its target.
func (s *Server) handover(sub *subscription, now time.Time) {
	for k, t := range sub.target {
		o := sub.owner[k]
		if o != nil && o.state != stateGone && o.parts[k].sent > sub.committed[k] {
			continue
		}
		if o != nil {
			delete(o.parts, k)
			o.wakeUp()
		}
		delete(sub.owner, k)
		delete(sub.target, k)
		delete(sub.reassigned, k)
		if t.state == stateStreaming {
			s.give(sub, k, t, now)
		}
	}
}

// closeWithWindow stops sending data. If events are uncommitted, the
// session stays (closing) for the rest of its commit timeout and commits
// are accepted; otherwise it is gone at once (docs/nakadi.md §4.5).
func (s *Server) closeWithWindow(sess *session, info string) {
	if sess.state != stateStreaming {
		return
	}
	s.queueInfo(sess, info)
	if s.uncommitted(sess) == 0 {
		s.finish(sess)
		return
	}
	sess.state = stateClosing
	sess.wakeUp()
	s.rebalance(sess.sub, s.now())
}

// endSession sends info (if any) and ends the session without a window:
// its partitions move at once and later commits get 422.
func (s *Server) endSession(sess *session, info string) {
	if sess.state == stateGone {
		return
	}
	s.queueInfo(sess, info)
	s.finish(sess)
}

// queueInfo queues an info line on the session's first partition.
func (s *Server) queueInfo(sess *session, info string) {
	if info == "" || len(sess.parts) == 0 {
		return
	}
	keys := sortedKeys(sess.parts)
	sess.infos = append(sess.infos, lineSpec{k: keys[0], off: sess.parts[keys[0]].sent, info: info})
}

// finish removes the session; its partitions go to the other streams.
func (s *Server) finish(sess *session) {
	if sess.state == stateGone {
		return
	}
	sess.state = stateGone
	sub := sess.sub
	sub.sessions = slices.DeleteFunc(sub.sessions, func(o *session) bool { return o == sess })
	for k := range sess.parts {
		if sub.owner[k] == sess {
			delete(sub.owner, k)
		}
	}
	sess.wakeUp()
	s.rebalance(sub, s.now())
}

// checkTimers applies the time-based transitions of one session.
func (s *Server) checkTimers(sess *session, now time.Time) {
	if sess.state == stateGone {
		return
	}
	ct := sess.prm.commitTimeout
	unc := s.uncommitted(sess)
	switch {
	case unc > 0 && !sess.commitClock.IsZero() && now.Sub(sess.commitClock) >= ct:
		if sess.state == stateStreaming {
			s.endSession(sess, "Commit timeout reached")
		} else {
			s.finish(sess)
		}
		return
	case sess.state == stateClosing && unc == 0:
		s.finish(sess)
		return
	case sess.state != stateStreaming:
		return
	case now.Sub(sess.start) >= sess.prm.streamTimeout:
		s.closeWithWindow(sess, "Stream timeout reached")
		return
	}
	for k := range sess.parts {
		if sess.sub.target[k] != nil && now.Sub(sess.sub.reassigned[k]) >= ct {
			s.finish(sess) // barrier on reassigning partition reached: no info
			return
		}
	}
	s.checkIdle(sess, now)
}

// checkIdle closes streams with no partitions for 2×commit_timeout, and
// applies stream_keep_alive_limit and stream_limit.
func (s *Server) checkIdle(sess *session, now time.Time) {
	if len(sess.parts) == 0 {
		if sess.noPartsSince.IsZero() {
			sess.noPartsSince = now
		} else if now.Sub(sess.noPartsSince) >= 2*sess.prm.commitTimeout {
			s.finish(sess)
		}
		return
	}
	if l := sess.prm.keepAliveLimit; l > 0 {
		all := true
		for _, sp := range sess.parts {
			all = all && sp.keepAlives >= l
		}
		if all {
			s.closeWithWindow(sess, "")
			return
		}
	}
	if l := sess.prm.streamLimit; l > 0 && sess.committedEv >= l {
		s.closeWithWindow(sess, "Stream limit in events reached: "+itoa(int64(l)))
	}
}

// plan decides what the stream writes next. end: the body ends normally;
// abort: the connection is cut; more: call again without waiting.
func (s *Server) plan(sess *session, now time.Time) (lines []lineSpec, end, abort, more bool) {
	s.checkTimers(sess, now)
	if sess.cut {
		s.closeWithWindow(sess, "")
		return nil, false, true, false
	}
	lines, sess.infos = sess.infos, nil
	switch sess.state {
	case stateGone:
		return lines, true, false, false
	case stateClosing:
		return lines, false, false, false
	}
	unc := s.uncommitted(sess)
	free := sess.prm.maxUncommitted - unc
	for _, k := range sortedKeys(sess.parts) {
		if sess.sub.target[k] != nil {
			continue // reassigning away: nothing new
		}
		l, n, again := s.nextLine(sess, k, free, now)
		if l == nil {
			continue
		}
		if n > 0 && unc == 0 {
			sess.commitClock = now
		}
		unc, free = unc+n, free-n
		more = more || again
		if !sess.firstSent {
			l.info = joinInfo("Stream started", l.info)
			sess.firstSent = true
		}
		lines = append(lines, *l)
		if n > 0 && s.faults.dup[k] > 0 {
			s.faults.dup[k]--
			lines = append(lines, *l)
		}
	}
	if sess.cutAfter > 0 && sess.eventsSent >= sess.cutAfter {
		sess.cut = true
		more = true
	}
	return lines, false, false, more
}

// nextLine returns the partition's next batch if it is full or its flush
// timeout passed (a keep-alive when there is nothing to send).
func (s *Server) nextLine(sess *session, k pkey, free int, now time.Time) (*lineSpec, int, bool) {
	sp := sess.parts[k]
	part := s.eventTypes[k.et].parts[k.p]
	i := part.after(sp.sent)
	avail := len(part.events) - i
	limit := min(sess.prm.batchLimit, max(free, 0))
	if sess.prm.streamLimit > 0 {
		limit = min(limit, max(sess.prm.streamLimit-sess.eventsSent, 0))
	}
	n := min(avail, limit)
	full := n > 0 && n == limit
	if !full && now.Sub(sp.lastFlush) < sess.prm.flush {
		return nil, 0, false
	}
	sp.lastFlush = now
	l := &lineSpec{k: k, off: sp.sent, info: sp.info}
	sp.info = ""
	if n == 0 {
		sp.keepAlives++
		return l, 0, false
	}
	l.events = make([][]byte, n)
	for j, e := range part.events[i : i+n] {
		l.events[j] = e.data
	}
	sp.sent = part.events[i+n-1].off
	sp.grant.Sent = sp.sent
	l.off = sp.sent
	sp.keepAlives = 0
	part.sent += n
	sess.eventsSent += n
	return l, n, full && avail > n && free > n
}

func joinInfo(a, b string) string {
	if b == "" {
		return a
	}
	return a + "; " + b
}

func sortedKeys(m map[pkey]*sessPart) []pkey {
	keys := make([]pkey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b pkey) int {
		if a.et != b.et {
			if a.et < b.et {
				return -1
			}
			return 1
		}
		return a.p - b.p
	})
	return keys
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
