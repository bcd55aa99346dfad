package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// commitResult is one item of a 200 commit answer.
type commitResult struct {
	Cursor Cursor `json:"cursor"`
	Result string `json:"result"`
}

// handleCommit is POST /subscriptions/{id}/cursors (docs/nakadi.md §5).
func (s *Server) handleCommit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Items []Cursor `json:"items"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed body: "+err.Error())
		return
	}
	sid := r.Header.Get("X-Nakadi-StreamId")
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.lookupSub(w, r)
	if sub == nil {
		return
	}
	results, status, detail := s.commit(sub, sid, req.Items)
	switch {
	case status != 0:
		writeProblem(w, status, detail)
	case slices.ContainsFunc(results, func(c commitResult) bool { return c.Result != "committed" }):
		writeJSON(w, http.StatusOK, map[string]any{"items": results})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// commit checks the stream id, the session and the ownership of every
// cursor, then moves the offsets forward. Called with s.mu held.
func (s *Server) commit(sub *subscription, sid string, items []Cursor) ([]commitResult, int, string) {
	switch {
	case sid == "":
		return nil, http.StatusBadRequest, "Missing request header 'X-Nakadi-StreamId'"
	case !isUUID(sid):
		return nil, http.StatusUnprocessableEntity, "Stream id has to be valid UUID"
	case len(items) == 0:
		return nil, http.StatusUnprocessableEntity, "cursors: must not be empty"
	}
	var sess *session
	for _, o := range sub.sessions {
		if o.id == sid {
			sess = o
		}
	}
	if sess == nil {
		return nil, http.StatusUnprocessableEntity, fmt.Sprintf("Session with stream id %s not found", sid)
	}
	keys := make([]pkey, len(items))
	offs := make([]int64, len(items))
	for i, c := range items {
		if c.CursorToken == "" {
			return nil, http.StatusUnprocessableEntity, "cursor_token: may not be null"
		}
		k, off, status, detail := s.cursorTarget(sub, c)
		if status != 0 {
			return nil, status, detail
		}
		if sub.owner[k] != sess {
			return nil, http.StatusUnprocessableEntity, fmt.Sprintf("Cursor %s:%s:%s cannot be committed with stream id %s", c.EventType, c.Partition, c.Offset, sid)
		}
		keys[i], offs[i] = k, off
	}
	results := make([]commitResult, len(items))
	moved := false
	for i, k := range keys {
		results[i] = commitResult{Cursor: items[i], Result: "outdated"}
		if offs[i] <= sub.committed[k] {
			continue
		}
		part := s.eventTypes[k.et].parts[k.p]
		sess.committedEv += part.count(sub.committed[k], offs[i])
		sub.committed[k] = offs[i]
		if sp := sess.parts[k]; sp != nil && sp.sent < offs[i] {
			sp.sent = offs[i]
		}
		results[i].Result, moved = "committed", true
	}
	if moved {
		s.afterCommit(sess)
	}
	return results, 0, ""
}

// afterCommit restarts the commit clock, hands over committed reassigning
// partitions and ends a closing session with nothing left uncommitted.
func (s *Server) afterCommit(sess *session) {
	now := s.now()
	sess.commitClock = time.Time{}
	if s.uncommitted(sess) > 0 {
		sess.commitClock = now
	}
	sess.wakeUp()
	s.handover(sess.sub, now)
	if sess.state == stateClosing && s.uncommitted(sess) == 0 {
		s.finish(sess)
	}
}

// handlePatchCursors is PATCH /subscriptions/{id}/cursors (docs/nakadi.md §7.3):
// {"items":[]} only initializes; a reset closes every stream, waits for
// them, then writes the offsets (backwards too).
func (s *Server) handlePatchCursors(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Items []Cursor `json:"items"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed body: "+err.Error())
		return
	}
	s.mu.Lock()
	sub := s.lookupSub(w, r)
	if sub == nil {
		s.mu.Unlock()
		return
	}
	if sub.resetting {
		s.mu.Unlock()
		writeProblem(w, http.StatusConflict, "Cursors reset is already in progress for provided subscription")
		return
	}
	s.initialize(sub)
	type target struct {
		k   pkey
		off int64
	}
	var targets []target
	for _, c := range req.Items {
		k, off, status, detail := s.cursorTarget(sub, c)
		if status == 0 && off < s.eventTypes[k.et].parts[k.p].beforeOldest() {
			// Nakadi validates reset cursors like read cursors: an
			// expired offset is UNAVAILABLE (422).
			status, detail = http.StatusUnprocessableEntity,
				fmt.Sprintf("offset %s for partition %d is unavailable as retention time of data elapsed", c.Offset, k.p)
		}
		if status != 0 {
			s.mu.Unlock()
			writeProblem(w, status, detail)
			return
		}
		targets = append(targets, target{k, off})
	}
	if len(targets) == 0 {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	sub.resetting = true
	var waits []chan struct{}
	for _, sess := range slices.Clone(sub.sessions) {
		waits = append(waits, sess.handlerDone)
		s.endSession(sess, "Resetting subscription cursors")
	}
	s.mu.Unlock()
	deadline := time.After(s.opts.MaxCommitTimeout + time.Second)
	for _, ch := range waits {
		select {
		case <-ch:
		case <-deadline:
		case <-s.done:
		}
	}
	s.mu.Lock()
	for _, t := range targets {
		sub.committed[t.k] = t.off
	}
	sub.resetting = false
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
