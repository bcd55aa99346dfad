package emulator

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// BatchItemResponse is the per-event answer of a 207 or 422 publish
// (docs/nakadi.md §10).
type BatchItemResponse struct {
	EID              string `json:"eid,omitempty"`
	PublishingStatus string `json:"publishing_status"`
	Step             string `json:"step"`
	Detail           string `json:"detail,omitempty"`
}

// PublishError is returned by Publish when Nakadi would not answer 200.
type PublishError struct {
	Status int
	Detail string
	Items  []BatchItemResponse
}

func (e *PublishError) Error() string {
	if len(e.Items) > 0 {
		for _, it := range e.Items {
			if it.PublishingStatus == "failed" {
				return fmt.Sprintf("emulator: publish: %d: %s: %s", e.Status, it.Step, it.Detail)
			}
		}
	}
	return fmt.Sprintf("emulator: publish: %d: %s", e.Status, e.Detail)
}

// Publish publishes events (raw JSON objects) as POST
// /event-types/{name}/events would, with validation, enrichment and
// partitioning. It returns a *PublishError unless all were published.
func (s *Server) Publish(eventType string, events ...[]byte) error {
	return s.publish(eventType, events, "", 0)
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	body := io.Reader(r.Body)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "bad gzip body")
			return
		}
		body = zr
	}
	var events []json.RawMessage
	dec := json.NewDecoder(body)
	if err := dec.Decode(&events); err != nil {
		writeProblem(w, http.StatusBadRequest, "body must be a JSON array of events: "+err.Error())
		return
	}
	raw := make([][]byte, len(events))
	for i, e := range events {
		raw[i] = e
	}
	forced, _ := r.Context().Value(publishFaultKey{}).(int)
	err := s.publish(r.PathValue("name"), raw, r.Header.Get("X-Flow-Id"), forced)
	var pe *PublishError
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.As(err, &pe) && pe.Items != nil:
		writeJSON(w, pe.Status, pe.Items)
	case errors.As(err, &pe):
		writeProblem(w, pe.Status, pe.Detail)
	default:
		writeProblem(w, http.StatusInternalServerError, err.Error())
	}
}

// prepared is an enriched event and its partition.
type prepared struct {
	data []byte
	part int
}

// publish validates and enriches all events first (all or nothing, 422),
// then stores them. forced is an injected 207 or 422.
func (s *Server) publish(name string, raw [][]byte, flowID string, forced int) error {
	s.mu.Lock()
	t := s.eventTypes[name]
	var rr int
	if t != nil {
		rr = t.rr
		t.rr += len(raw)
	}
	s.mu.Unlock()
	if t == nil {
		return &PublishError{Status: http.StatusNotFound, Detail: fmt.Sprintf("EventType %q does not exist.", name)}
	}
	if flowID == "" {
		flowID = newUUID()[:24]
	}
	now := s.now().UTC()
	out := make([]prepared, len(raw))
	for i, ev := range raw {
		p, step, err := s.prepare(t, ev, rr+i, flowID, now)
		if err != nil {
			return rejectBatch(raw, i, step, err.Error())
		}
		out[i] = p
	}
	if forced == http.StatusUnprocessableEntity {
		return rejectBatch(raw, 0, "validating", "injected fault")
	}
	keep := len(out)
	if forced == http.StatusMultiStatus {
		keep = len(out) / 2
	}
	s.store(t, out[:keep], now)
	if keep < len(out) {
		return partialBatch(raw, keep)
	}
	return nil
}

// store appends prepared events and wakes the streams that read them.
func (s *Server) store(t *eventType, evs []prepared, now time.Time) {
	if len(evs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range evs {
		t.parts[e.part].append(e.data, now, s.opts.RetainEvents)
	}
	for _, sub := range s.subs {
		if sub.reads(t.Name) {
			for _, sess := range sub.sessions {
				sess.wakeUp()
			}
		}
	}
}

// prepare validates, partitions and enriches one event.
func (s *Server) prepare(t *eventType, ev []byte, rr int, flowID string, now time.Time) (prepared, string, error) {
	if len(ev) > s.opts.MaxEventBytes {
		return prepared{}, "validating", fmt.Errorf("event too large: %d bytes", len(ev))
	}
	top, err := members(ev)
	if err != nil {
		return prepared{}, "validating", fmt.Errorf("event is not a JSON object: %w", err)
	}
	part := rr % t.Partitions
	if len(t.PartitionKeyFields) > 0 {
		if part, err = keyPartition(t, top); err != nil {
			return prepared{}, "partitioning", err
		}
	}
	if t.Category == CategoryUndefined {
		return prepared{data: buildObject(top), part: part}, "", nil
	}
	if err := validate(t, top); err != nil {
		return prepared{}, "validating", err
	}
	top, err = enrich(t, top, part, flowID, now)
	if err != nil {
		return prepared{}, "enriching", err
	}
	return prepared{data: buildObject(top), part: part}, "", nil
}

// validate checks the metadata and, for data change events, the envelope.
func validate(t *eventType, top []member) error {
	meta, ok := lookup(top, "metadata")
	if !ok {
		return errors.New("#: required property metadata not found")
	}
	mm, err := members(meta)
	if err != nil {
		return errors.New("#/metadata: expected object")
	}
	var eid, occurred string
	if raw, ok := lookup(mm, "eid"); !ok || json.Unmarshal(raw, &eid) != nil || !isUUID(eid) {
		return errors.New("#/metadata/eid: required UUID missing or invalid")
	}
	if raw, ok := lookup(mm, "occurred_at"); !ok || json.Unmarshal(raw, &occurred) != nil || !isRFC3339(occurred) {
		return errors.New("#/metadata/occurred_at: required RFC 3339 date-time missing or invalid")
	}
	if _, ok := lookup(mm, "received_at"); ok {
		return errors.New("#/metadata/received_at: must not be set by the producer")
	}
	if raw, ok := lookup(mm, "event_type"); ok {
		var et string
		if json.Unmarshal(raw, &et) != nil || et != t.Name {
			return fmt.Errorf("#/metadata/event_type: does not match %q", t.Name)
		}
	}
	if t.Category == CategoryData {
		var op string
		if raw, ok := lookup(top, "data_op"); !ok || json.Unmarshal(raw, &op) != nil || !strings.Contains("CUDS", op) || len(op) != 1 {
			return errors.New("#/data_op: required, one of C, U, D, S")
		}
		if _, ok := lookup(top, "data_type"); !ok {
			return errors.New("#: required property data_type not found")
		}
		if raw, ok := lookup(top, "data"); !ok || len(raw) == 0 || raw[0] != '{' {
			return errors.New("#/data: required object")
		}
	}
	return nil
}

func isRFC3339(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, strings.ToUpper(strings.Replace(s, " ", "T", 1)))
	return err == nil
}

// enrich sets the metadata Nakadi owns (docs/nakadi.md §2.2).
func enrich(t *eventType, top []member, part int, flowID string, now time.Time) ([]member, error) {
	for i := range top {
		if top[i].key != "metadata" {
			continue
		}
		mm, err := members(top[i].raw)
		if err != nil {
			return nil, err
		}
		mm = set(mm, "received_at", quote(now.Format("2006-01-02T15:04:05.000Z07:00")))
		mm = set(mm, "partition", quote(fmt.Sprint(part)))
		mm = set(mm, "event_type", quote(t.Name))
		mm = set(mm, "version", quote("1.0.0"))
		mm = set(mm, "published_by", quote("materializer-emulator"))
		if _, ok := lookup(mm, "flow_id"); !ok {
			mm = set(mm, "flow_id", quote(flowID))
		}
		top[i].raw = buildObject(mm)
	}
	return top, nil
}

// keyPartition hashes the partition key fields.
func keyPartition(t *eventType, top []member) (int, error) {
	keys := make([][]byte, 0, len(t.PartitionKeyFields))
	for _, f := range t.PartitionKeyFields {
		path := f
		if t.Category == CategoryData {
			path = "data." + f
		}
		v, ok := walk(top, path)
		if !ok {
			return 0, fmt.Errorf("partition key field %q not found", f)
		}
		keys = append(keys, v)
	}
	return hashPartition(keys, t.Partitions), nil
}

// rejectBatch is the 422 answer: the bad event failed, the others aborted.
func rejectBatch(raw [][]byte, bad int, step, detail string) error {
	items := make([]BatchItemResponse, len(raw))
	for i := range raw {
		items[i] = BatchItemResponse{EID: eidOf(raw[i]), PublishingStatus: "aborted", Step: "none"}
		switch {
		case i < bad:
			items[i].Step = "validating"
		case i == bad:
			items[i].PublishingStatus, items[i].Step, items[i].Detail = "failed", step, detail
		}
	}
	return &PublishError{Status: http.StatusUnprocessableEntity, Items: items}
}

// partialBatch is the 207 answer: the first keep events were submitted.
func partialBatch(raw [][]byte, keep int) error {
	items := make([]BatchItemResponse, len(raw))
	for i := range raw {
		items[i] = BatchItemResponse{EID: eidOf(raw[i]), PublishingStatus: "submitted", Step: "none"}
		if i >= keep {
			items[i].PublishingStatus, items[i].Step, items[i].Detail = "failed", "publishing", "injected fault"
		}
	}
	return &PublishError{Status: http.StatusMultiStatus, Items: items}
}

func eidOf(ev []byte) string {
	var e struct {
		Metadata struct {
			EID string `json:"eid"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(ev, &e)
	return e.Metadata.EID
}

// member is one key and raw value of a JSON object, in input order.
type member struct {
	key string
	raw []byte
}

// members splits a JSON object into its members, keeping their order.
func members(obj []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, err
		}
		out = append(out, member{key: tok.(string), raw: buf.Bytes()})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the object")
	}
	return out, nil
}

// buildObject writes members back as a compact object.
func buildObject(ms []member) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(quote(m.key))
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// lookup returns the value of the last member named key.
func lookup(ms []member, key string) ([]byte, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].key == key {
			return ms[i].raw, true
		}
	}
	return nil, false
}

// set replaces (or appends) a member.
func set(ms []member, key string, raw []byte) []member {
	for i := range ms {
		if ms[i].key == key {
			ms[i].raw = raw
			return ms
		}
	}
	return append(ms, member{key, raw})
}

// walk follows a dotted path of object keys.
func walk(ms []member, path string) ([]byte, bool) {
	head, rest, more := strings.Cut(path, ".")
	v, ok := lookup(ms, head)
	if !ok || !more {
		return v, ok && string(v) != "null"
	}
	inner, err := members(v)
	if err != nil {
		return nil, false
	}
	return walk(inner, rest)
}

// quote encodes a JSON string without HTML escaping.
func quote(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
