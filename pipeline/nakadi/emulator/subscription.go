package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

type subscription struct {
	ID                string   `json:"id"`
	OwningApplication string   `json:"owning_application"`
	EventTypes        []string `json:"event_types"`
	ConsumerGroup     string   `json:"consumer_group"`
	ReadFrom          string   `json:"read_from"`
	InitialCursors    []Cursor `json:"initial_cursors,omitempty"`
	CreatedAt         string   `json:"created_at"`
	UpdatedAt         string   `json:"updated_at"`

	initialized bool
	committed   map[pkey]int64
	sessions    []*session // streaming and closing, in join order
	owner       map[pkey]*session
	target      map[pkey]*session // where a reassigning partition goes
	reassigned  map[pkey]time.Time
	resetting   bool
	joins       int
	grants      []*Grant // every hand-out of a partition to a stream, in order
}

// Cursor is a subscription cursor on the wire.
type Cursor struct {
	EventType   string `json:"event_type"`
	Partition   string `json:"partition"`
	Offset      string `json:"offset"`
	CursorToken string `json:"cursor_token,omitempty"`
}

func (sub *subscription) reads(et string) bool { return slices.Contains(sub.EventTypes, et) }

// subKey is the identity of a subscription (docs/nakadi.md §3.1).
func subKey(app, group string, ets []string) string {
	return app + "\x00" + group + "\x00" + strings.Join(ets, "\x00")
}

// partitions lists the subscription's partitions in a stable order.
func (s *Server) partitions(sub *subscription) []pkey {
	var out []pkey
	for _, et := range sub.EventTypes {
		for p := range s.eventTypes[et].parts {
			out = append(out, pkey{et, p})
		}
	}
	return out
}

func (s *Server) handleCreateSubscription(w http.ResponseWriter, r *http.Request) {
	var req subscription
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed subscription: "+err.Error())
		return
	}
	sub, created, status, detail := s.createSubscription(req)
	if status != 0 {
		writeProblem(w, status, detail)
		return
	}
	w.Header().Set("Location", "/subscriptions/"+sub.ID)
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		w.Header().Set("Content-Location", "/subscriptions/"+sub.ID)
	}
	writeJSON(w, code, sub)
}

// createSubscription is idempotent by (owning_application, set of event
// types, consumer_group); every other field of a repeat is ignored.
func (s *Server) createSubscription(req subscription) (sub subscription, created bool, status int, detail string) {
	if req.OwningApplication == "" || len(req.EventTypes) == 0 {
		return sub, false, http.StatusUnprocessableEntity, "owning_application and event_types are required"
	}
	if req.ConsumerGroup == "" {
		req.ConsumerGroup = "default"
	}
	req.ReadFrom = strings.ToLower(req.ReadFrom)
	if req.ReadFrom == "" {
		req.ReadFrom = "end"
	}
	if req.ReadFrom != "begin" && req.ReadFrom != "end" && req.ReadFrom != "cursors" {
		return sub, false, http.StatusUnprocessableEntity, "read_from must be begin, end or cursors"
	}
	ets := slices.Clone(req.EventTypes)
	slices.Sort(ets)
	ets = slices.Compact(ets)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, et := range ets {
		if s.eventTypes[et] == nil {
			return sub, false, http.StatusUnprocessableEntity, fmt.Sprintf("Failed to create subscription, event type(s) not found: '%s'", et)
		}
	}
	key := subKey(req.OwningApplication, req.ConsumerGroup, ets)
	for _, old := range s.subs {
		if subKey(old.OwningApplication, old.ConsumerGroup, old.EventTypes) == key {
			return old.view(), false, 0, ""
		}
	}
	now := s.now().UTC().Format(time.RFC3339Nano)
	n := &subscription{
		ID: newUUID(), OwningApplication: req.OwningApplication, EventTypes: ets, ConsumerGroup: req.ConsumerGroup,
		ReadFrom: req.ReadFrom, InitialCursors: req.InitialCursors, CreatedAt: now, UpdatedAt: now,
		committed: make(map[pkey]int64), owner: make(map[pkey]*session), target: make(map[pkey]*session),
		reassigned: make(map[pkey]time.Time),
	}
	if n.ReadFrom == "cursors" {
		if status, detail := s.checkInitialCursors(n); status != 0 {
			return sub, false, status, detail
		}
	}
	s.subs[n.ID] = n
	return n.view(), true, 0, ""
}

// view copies the wire fields.
func (sub *subscription) view() subscription {
	return subscription{ID: sub.ID, OwningApplication: sub.OwningApplication, EventTypes: sub.EventTypes,
		ConsumerGroup: sub.ConsumerGroup, ReadFrom: sub.ReadFrom, InitialCursors: sub.InitialCursors,
		CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt}
}

func (s *Server) checkInitialCursors(sub *subscription) (int, string) {
	seen := map[pkey]bool{}
	for _, c := range sub.InitialCursors {
		k, _, status, detail := s.cursorTarget(sub, c)
		if status != 0 {
			return status, detail
		}
		seen[k] = true
	}
	if len(seen) != len(s.partitions(sub)) {
		return http.StatusUnprocessableEntity, "initial_cursors should contain cursors for all partitions of subscription"
	}
	return 0, ""
}

// cursorTarget resolves a cursor to a partition and offset.
func (s *Server) cursorTarget(sub *subscription, c Cursor) (pkey, int64, int, string) {
	if !sub.reads(c.EventType) {
		return pkey{}, 0, http.StatusUnprocessableEntity, fmt.Sprintf("event type %q is not in the subscription", c.EventType)
	}
	p, err := strconv.Atoi(c.Partition)
	if err != nil || p < 0 || p >= len(s.eventTypes[c.EventType].parts) {
		return pkey{}, 0, http.StatusUnprocessableEntity, fmt.Sprintf("partition %q of %q not found", c.Partition, c.EventType)
	}
	k := pkey{c.EventType, p}
	part := s.eventTypes[c.EventType].parts[p]
	off, ok := parseOffset(c.Offset, part.beforeOldest())
	if !ok || off > part.newest() {
		return pkey{}, 0, http.StatusUnprocessableEntity, fmt.Sprintf("invalid offset %q for partition %s", c.Offset, k)
	}
	return k, off, 0, ""
}

// initialize applies read_from lazily, on the first stream or PATCH
// (docs/nakadi.md §3.2). Called with s.mu held.
func (s *Server) initialize(sub *subscription) {
	if sub.initialized {
		return
	}
	sub.initialized = true
	for _, k := range s.partitions(sub) {
		part := s.eventTypes[k.et].parts[k.p]
		switch sub.ReadFrom {
		case "begin":
			sub.committed[k] = part.beforeOldest()
		default:
			sub.committed[k] = part.newest()
		}
	}
	for _, c := range sub.InitialCursors {
		if k, off, status, _ := s.cursorTarget(sub, c); status == 0 {
			sub.committed[k] = off
		}
	}
}

// lookupSub finds a subscription or answers 404. Called with s.mu held.
func (s *Server) lookupSub(w http.ResponseWriter, r *http.Request) *subscription {
	sub := s.subs[r.PathValue("id")]
	if sub == nil {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("Subscription with id %q does not exist", r.PathValue("id")))
	}
	return sub
}

func (s *Server) handleGetSubscription(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.lookupSub(w, r); sub != nil {
		writeJSON(w, http.StatusOK, sub.view())
	}
}

func (s *Server) handleDeleteSubscription(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.lookupSub(w, r)
	if sub == nil {
		return
	}
	for _, sess := range slices.Clone(sub.sessions) {
		s.finish(sess)
	}
	delete(s.subs, sub.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleGetCursors(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.lookupSub(w, r)
	if sub == nil {
		return
	}
	items := []Cursor{}
	if sub.initialized {
		for _, k := range s.partitions(sub) {
			items = append(items, Cursor{k.et, strconv.Itoa(k.p), Offset(sub.committed[k]), newUUID()})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// partitionsView is one row of GET /event-types/{name}/partitions.
type partitionsView struct {
	Partition string `json:"partition"`
	Oldest    string `json:"oldest_available_offset"`
	Newest    string `json:"newest_available_offset"`
}

func (s *Server) handlePartitions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.eventTypes[r.PathValue("name")]
	if t == nil {
		writeProblem(w, http.StatusNotFound, "EventType does not exist")
		return
	}
	out := make([]partitionsView, len(t.parts))
	for i, p := range t.parts {
		out[i] = partitionsView{strconv.Itoa(i), Offset(p.beforeOldest() + 1), Offset(p.newest())}
	}
	writeJSON(w, http.StatusOK, out)
}

// statsView is one event type of GET /subscriptions/{id}/stats.
type statsView struct {
	EventType  string          `json:"event_type"`
	Partitions []partitionStat `json:"partitions"`
}

type partitionStat struct {
	Partition        string   `json:"partition"`
	State            string   `json:"state"`
	UnconsumedEvents *int64   `json:"unconsumed_events,omitempty"`
	ConsumerLag      *float64 `json:"consumer_lag_seconds,omitempty"`
	StreamID         string   `json:"stream_id"`
	AssignmentType   string   `json:"assignment_type,omitempty"`
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.lookupSub(w, r)
	if sub == nil {
		return
	}
	lag := r.URL.Query().Get("show_time_lag") == "true"
	var out []statsView
	for _, et := range sub.EventTypes {
		v := statsView{EventType: et}
		for p := range s.eventTypes[et].parts {
			v.Partitions = append(v.Partitions, s.partitionStat(sub, pkey{et, p}, lag))
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

func (s *Server) partitionStat(sub *subscription, k pkey, lag bool) partitionStat {
	st := partitionStat{Partition: strconv.Itoa(k.p), State: "unassigned"}
	if o := sub.owner[k]; o != nil {
		st.State, st.StreamID, st.AssignmentType = "assigned", o.id, "auto"
		if sub.target[k] != nil {
			st.State = "reassigning"
		}
	}
	if !sub.initialized {
		return st
	}
	part := s.eventTypes[k.et].parts[k.p]
	n := int64(part.count(sub.committed[k], part.newest()))
	st.UnconsumedEvents = &n
	if lag {
		secs := 0.0
		if i := part.after(sub.committed[k]); i < len(part.events) {
			secs = s.now().Sub(part.events[i].received).Seconds()
		}
		st.ConsumerLag = &secs
	}
	return st
}
