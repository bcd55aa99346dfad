package nakadi

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Operations of the operator tools below (ProblemError.Op).
const (
	opReset      = "reset cursors"
	opPartitions = opEventType
)

// PartitionOffsets is one partition of GET /event-types/{name}/partitions:
// the oldest and newest offsets still available (retention).
type PartitionOffsets struct {
	Partition string `json:"partition"`
	Oldest    string `json:"oldest_available_offset"`
	Newest    string `json:"newest_available_offset"`
}

// Partitions reads an event type's partitions with their available offsets.
// cfg needs URL (and TokenFile when Nakadi wants a token).
func Partitions(ctx context.Context, cfg Config, eventType string) ([]PartitionOffsets, error) {
	a := newAPI(cfg.withDefaults())
	var out []PartitionOffsets
	_, err := a.call(ctx, opPartitions, http.MethodGet, "/event-types/"+url.PathEscape(eventType)+"/partitions", nil, nil, &out, http.StatusOK)
	return out, err
}

// ResetCursors moves the committed cursors of the subscription a Consumer
// with cfg reads (found or created exactly as the Consumer does: same
// owning_application, event_types and consumer_group) to cursors, with
// PATCH /subscriptions/{id}/cursors. Nakadi closes the subscription's open
// streams first; consumption then resumes right after each cursor's offset
// (offset "BEGIN": before the oldest available event). Partitions not named
// keep their cursors. It needs admin rights on the subscription and
// returns the subscription id.
func ResetCursors(ctx context.Context, cfg Config, cursors []Cursor) (string, error) {
	cfg, err := cfg.checked()
	if err != nil {
		return "", err
	}
	a := newAPI(cfg)
	sub, _, err := a.createSubscription(ctx, cfg.subscription())
	if err != nil {
		return "", err
	}
	// The reset takes no cursor token (docs/nakadi.md §7.3).
	type item struct {
		EventType string `json:"event_type"`
		Partition string `json:"partition"`
		Offset    string `json:"offset"`
	}
	items := make([]item, len(cursors))
	for i, c := range cursors {
		items[i] = item{c.EventType, c.Partition, c.Offset}
	}
	// Nakadi blocks the call up to the commit timeout + 1 s while open
	// streams close: allow for it on top of the request timeout.
	a.timeout += cfg.CommitTimeout + 5*time.Second
	_, err = a.call(ctx, opReset, http.MethodPatch, "/subscriptions/"+url.PathEscape(sub.ID)+"/cursors", nil,
		map[string][]item{"items": items}, nil, http.StatusNoContent, http.StatusOK)
	return sub.ID, err
}

// newAPI is the HTTP side of a Consumer, for one-shot operator calls.
func newAPI(cfg Config) *api {
	return &api{base: trimBase(cfg.URL), client: &http.Client{Transport: cfg.Transport},
		streams: &http.Client{Transport: cfg.StreamTransport},
		tokens:  &tokenSource{path: cfg.TokenFile, now: cfg.Now}, timeout: cfg.RequestTimeout}
}
