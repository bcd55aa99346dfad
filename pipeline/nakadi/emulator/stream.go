package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	prm, status, detail := s.parseParams(r)
	if status != 0 {
		writeProblem(w, status, detail)
		return
	}
	sess, status, detail := s.openSession(r.PathValue("id"), prm)
	if status != 0 {
		writeProblem(w, status, detail)
		return
	}
	defer close(sess.handlerDone)
	w.Header().Set("Content-Type", "application/x-json-stream")
	w.Header().Set("X-Nakadi-StreamId", sess.id)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		s.clientGone(sess)
		return
	}
	s.serveStream(w, rc, r, sess)
}

// openSession registers a stream, or answers 404/409 (docs/nakadi.md §4.4, §4.6).
func (s *Server) openSession(subID string, prm params) (*session, int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[subID]
	if sub == nil {
		return nil, http.StatusNotFound, fmt.Sprintf("Subscription with id %q does not exist", subID)
	}
	if sub.resetting {
		return nil, http.StatusConflict, "Resetting subscription cursors request is still in progress"
	}
	s.initialize(sub)
	if slots := len(s.partitions(sub)); len(sub.sessions) >= slots {
		return nil, http.StatusConflict, fmt.Sprintf("No free slots for streaming available for subscription %s. Total slots: %d", sub.ID, slots)
	}
	now := s.now()
	sess := &session{
		id: newUUID(), sub: sub, prm: prm, start: now, parts: make(map[pkey]*sessPart),
		wake: make(chan struct{}, 1), handlerDone: make(chan struct{}),
	}
	if s.faults.cutNext > 0 {
		sess.cutAfter, s.faults.cutNext = s.faults.cutNext, 0
	}
	sub.sessions = append(sub.sessions, sess)
	sub.joins++
	s.rebalance(sub, now)
	return sess, 0, ""
}

// serveStream writes lines until the session ends, the client goes away or
// the server closes.
func (s *Server) serveStream(w http.ResponseWriter, rc *http.ResponseController, r *http.Request, sess *session) {
	tick := time.NewTicker(s.opts.Tick)
	defer tick.Stop()
	var buf bytes.Buffer
	for {
		s.mu.Lock()
		lines, end, abort, more := s.plan(sess, s.now())
		for i := range lines {
			lines[i].name = s.faults.names[lines[i].k]
		}
		s.mu.Unlock()
		if len(lines) > 0 {
			buf.Reset()
			for _, l := range lines {
				writeLine(&buf, l)
			}
			if _, err := w.Write(buf.Bytes()); err != nil || rc.Flush() != nil {
				s.clientGone(sess)
				return
			}
		}
		switch {
		case abort:
			panic(http.ErrAbortHandler) // cut: no final chunk, the client sees an unexpected EOF
		case end:
			return
		case more:
			continue
		}
		select {
		case <-sess.wake:
		case <-tick.C:
		case <-r.Context().Done():
			s.clientGone(sess)
			return
		case <-s.done:
			return
		}
	}
}

// clientGone gives a session whose connection dropped its closing window.
func (s *Server) clientGone(sess *session) {
	s.mu.Lock()
	s.closeWithWindow(sess, "")
	s.mu.Unlock()
}

// writeLine writes one batch line in the byte layout of docs/nakadi.md §4.2.
func writeLine(b *bytes.Buffer, l lineSpec) {
	b.WriteString(`{"cursor":{"partition":`)
	if l.name != "" {
		b.Write(quote(l.name))
	} else {
		b.WriteString(`"` + strconv.Itoa(l.k.p) + `"`)
	}
	b.WriteString(`,"offset":"`)
	b.WriteString(Offset(l.off))
	b.WriteString(`","event_type":`)
	b.Write(quote(l.k.et))
	b.WriteString(`,"cursor_token":"`)
	b.WriteString(newUUID())
	b.WriteString(`"}`)
	if len(l.events) > 0 {
		b.WriteString(`,"events":[`)
		for i, e := range l.events {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e)
		}
		b.WriteByte(']')
	}
	if l.info != "" {
		b.WriteString(`,"info":{"debug":`)
		b.Write(quote(l.info))
		b.WriteByte('}')
	}
	b.WriteString("}\n")
}

// parseParams reads the stream parameters from the query (GET) or the JSON
// body (POST). Non-numbers give 400, bad values 422 (docs/nakadi.md §4.1, §14).
func (s *Server) parseParams(r *http.Request) (params, int, string) {
	vals := map[string]string{}
	for k := range r.URL.Query() {
		vals[k] = r.URL.Query().Get(k)
	}
	if r.Method == http.MethodPost && r.ContentLength != 0 {
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return params{}, http.StatusBadRequest, "malformed body: " + err.Error()
		}
		for k, v := range body {
			if k == "partitions" {
				if string(v) != "[]" && string(v) != "null" {
					return params{}, http.StatusUnprocessableEntity, "direct partition assignment is not supported by the emulator"
				}
				continue
			}
			vals[k] = string(v)
		}
	}
	var p params
	num := func(name string, def float64) float64 {
		v, ok := vals[name]
		if !ok || v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return math.NaN()
		}
		return f
	}
	secs := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	bl, fl, mu := num("batch_limit", 1), num("batch_flush_timeout", 30), num("max_uncommitted_events", 10)
	ct, st, sl, kl := num("commit_timeout", 0), num("stream_timeout", 0), num("stream_limit", 0), num("stream_keep_alive_limit", 0)
	for _, f := range []float64{bl, fl, mu, ct, st, sl, kl} {
		if math.IsNaN(f) {
			return p, http.StatusBadRequest, "stream parameters must be numbers"
		}
	}
	maxCT := s.opts.MaxCommitTimeout
	switch {
	case bl < 1:
		return p, http.StatusUnprocessableEntity, "batch_limit can't be lower than 1"
	case ct < 0 || secs(ct) > maxCT:
		return p, http.StatusUnprocessableEntity, fmt.Sprintf("commit_timeout can't be negative or more than %v", maxCT)
	}
	p = params{batchLimit: int(bl), flush: secs(fl), maxUncommitted: int(mu), commitTimeout: secs(ct),
		streamTimeout: secs(st), streamLimit: int(sl), keepAliveLimit: int(kl)}
	if p.commitTimeout == 0 {
		p.commitTimeout = maxCT
	}
	if st <= 0 || st > 4200 {
		p.streamTimeout = s.opts.DefaultStreamTimeout
	}
	return p, 0, ""
}
