package nakadi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"materializer/internal/redact"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAnswerBytes caps the body read of non-stream answers.
const maxAnswerBytes = 16 << 20

// api makes the HTTP requests. Every request carries the bearer token and
// an X-Flow-Id; a 401 re-reads the token file and retries once.
type api struct {
	base    string
	client  *http.Client // requests: no Timeout, a.timeout bounds each
	streams *http.Client // streams: no Timeout, they are long
	tokens  *tokenSource
	timeout time.Duration
}

// subscription is the part of Nakadi's Subscription we send and read.
type subscription struct {
	ID                string   `json:"id,omitempty"`
	OwningApplication string   `json:"owning_application"`
	EventTypes        []string `json:"event_types"`
	ConsumerGroup     string   `json:"consumer_group"`
	ReadFrom          string   `json:"read_from"`
}

// commitResult is one item of a 200 commit answer.
type commitResult struct {
	Cursor Cursor `json:"cursor"`
	Result string `json:"result"` // committed | outdated
}

// statsEventType is one event type of GET /subscriptions/{id}/stats.
type statsEventType struct {
	EventType  string `json:"event_type"`
	Partitions []struct {
		Partition        string   `json:"partition"`
		State            string   `json:"state"`
		UnconsumedEvents *int64   `json:"unconsumed_events"`
		ConsumerLag      *float64 `json:"consumer_lag_seconds"`
		StreamID         string   `json:"stream_id"`
		AssignmentType   string   `json:"assignment_type"`
	} `json:"partitions"`
}

// call sends one non-stream request; ok lists the success statuses. The
// answer of a success is decoded into out (when not nil).
func (a *api) call(ctx context.Context, op, method, path string, hdr http.Header, in, out any, ok ...int) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, fmt.Errorf("nakadi: %s: %w", op, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		resp, err := a.send(ctx, method, path, hdr, body, "application/json")
		if err != nil {
			return 0, fmt.Errorf("nakadi: %s: %w", op, err)
		}
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		resp.Body.Close()
		if err != nil {
			return resp.StatusCode, fmt.Errorf("nakadi: %s: reading answer: %w", op, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && a.tokens.path != "" {
			if err := a.tokens.refresh(); err != nil {
				return resp.StatusCode, err
			}
			continue
		}
		for _, s := range ok {
			if resp.StatusCode == s {
				if out != nil && len(answer) > 0 && resp.StatusCode != http.StatusNoContent {
					if err := json.Unmarshal(answer, out); err != nil {
						return resp.StatusCode, fmt.Errorf("nakadi: %s: decoding answer: %w", op, err)
					}
				}
				return resp.StatusCode, nil
			}
		}
		return resp.StatusCode, problemFrom(op, resp, answer)
	}
}

// send builds and sends one request (accept "" sends no Accept header).
func (a *api) send(ctx context.Context, method, path string, hdr http.Header, body []byte, accept string) (*http.Response, error) {
	return a.sendWith(a.client, ctx, method, path, hdr, body, accept)
}

func (a *api) sendWith(client *http.Client, ctx context.Context, method, path string, hdr http.Header, body []byte, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("X-Flow-Id", flowID())
	tok, err := a.tokens.get()
	if err != nil && tok == "" {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, redactErr(err)
	}
	return resp, nil
}

// createSubscription creates or gets the subscription (201 or 200).
func (a *api) createSubscription(ctx context.Context, s subscription) (subscription, bool, error) {
	var got subscription
	code, err := a.call(ctx, opCreate, http.MethodPost, "/subscriptions", nil, s, &got, http.StatusOK, http.StatusCreated)
	if err == nil && got.ID == "" {
		err = fmt.Errorf("nakadi: %s: answer without id", opCreate)
	}
	return got, code == http.StatusCreated, err
}

// initCursors is PATCH …/cursors {"items":[]}: read_from takes effect now.
func (a *api) initCursors(ctx context.Context, subID string) error {
	_, err := a.call(ctx, opInit, http.MethodPatch, "/subscriptions/"+url.PathEscape(subID)+"/cursors", nil,
		map[string][]Cursor{"items": {}}, nil, http.StatusNoContent, http.StatusOK)
	return err
}

// cursors returns the subscription's committed cursors.
func (a *api) cursors(ctx context.Context, subID string) ([]Cursor, error) {
	var out struct {
		Items []Cursor `json:"items"`
	}
	_, err := a.call(ctx, opCursors, http.MethodGet, "/subscriptions/"+url.PathEscape(subID)+"/cursors", nil, nil, &out, http.StatusOK)
	return out.Items, err
}

// commit commits cursors with a stream id. 204 means all committed; 200
// lists committed/outdated per cursor (both are success).
func (a *api) commit(ctx context.Context, subID, streamID string, cs []Cursor) ([]commitResult, error) {
	var out struct {
		Items []commitResult `json:"items"`
	}
	hdr := http.Header{}
	hdr.Set("X-Nakadi-StreamId", streamID)
	_, err := a.call(ctx, opCommit, http.MethodPost, "/subscriptions/"+url.PathEscape(subID)+"/cursors", hdr,
		map[string][]Cursor{"items": cs}, &out, http.StatusNoContent, http.StatusOK)
	return out.Items, err
}

// stats returns /stats with the time lag.
func (a *api) stats(ctx context.Context, subID string) ([]statsEventType, error) {
	var out struct {
		Items []statsEventType `json:"items"`
	}
	_, err := a.call(ctx, opStats, http.MethodGet, "/subscriptions/"+url.PathEscape(subID)+"/stats?show_time_lag=true", nil, nil, &out, http.StatusOK)
	return out.Items, err
}

// openStream starts GET /subscriptions/{id}/events. The body stays open
// until ctx ends; only the wait for the headers is bounded by the timeout.
func (a *api) openStream(ctx context.Context, subID string, q url.Values) (*http.Response, error) {
	path := "/subscriptions/" + url.PathEscape(subID) + "/events?" + q.Encode()
	for attempt := 0; ; attempt++ {
		hctx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(a.timeout, cancel)
		resp, err := a.sendWith(a.streams, hctx, http.MethodGet, path, nil, nil, "")
		stopped := timer.Stop()
		if err != nil {
			cancel()
			if !stopped && ctx.Err() == nil {
				err = fmt.Errorf("no response headers within %v: %w", a.timeout, err)
			}
			return nil, fmt.Errorf("nakadi: %s: %w", opStream, err)
		}
		if resp.StatusCode == http.StatusOK {
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && a.tokens.path != "" {
			if err := a.tokens.refresh(); err != nil {
				return nil, err
			}
			continue
		}
		return nil, problemFrom(opStream, resp, answer)
	}
}

// cancelOnClose releases the stream's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// flowID returns a fresh X-Flow-Id.
func flowID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "materializer-" + hex.EncodeToString(b[:])
}

// redactErr strips credentials from URLs in transport errors.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redact.URL(ue.URL), Err: ue.Err}
	}
	return err
}

// trimBase normalizes the base URL.
func trimBase(u string) string { return strings.TrimRight(u, "/") }
