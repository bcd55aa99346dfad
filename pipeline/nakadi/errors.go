package nakadi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. A *ProblemError matches the one of its status with
// errors.Is; branch on these, never on error text.
var (
	ErrBadRequest           = errors.New("nakadi: bad request")                                 // 400
	ErrUnauthorized         = errors.New("nakadi: unauthorized")                                // 401 (after a token refresh)
	ErrForbidden            = errors.New("nakadi: forbidden")                                   // 403
	ErrNotFound             = errors.New("nakadi: not found")                                   // 404
	ErrSubscriptionNotFound = errors.New("nakadi: subscription not found")                      // 404 on a subscription endpoint
	ErrConflict             = errors.New("nakadi: conflict")                                    // 409: no free slot, reset in progress, creation race
	ErrUnprocessable        = errors.New("nakadi: unprocessable entity")                        // 422
	ErrSessionGone          = errors.New("nakadi: stream session gone or partition reassigned") // 422 on a commit
	ErrTooManyRequests      = errors.New("nakadi: too many requests")                           // 429
	ErrServer               = errors.New("nakadi: server error")                                // 5xx
	ErrIdleTimeout          = errors.New("nakadi: stream idle timeout")
	ErrStreamEnded          = errors.New("nakadi: stream ended")
)

// Operations named in ProblemError.Op.
const (
	opCreate    = "create subscription"
	opInit      = "initialize cursors"
	opStream    = "open stream"
	opCommit    = "commit cursors"
	opCursors   = "get cursors"
	opStats     = "get stats"
	opEventType = "get partitions"
)

// ProblemError is an HTTP error answer of Nakadi (Problem JSON, docs/nakadi.md §1.3).
type ProblemError struct {
	Op     string // what the client was doing
	Status int
	Type   string
	Title  string
	Detail string
	// RetryAfter is the Retry-After header (429/503 from a proxy), or 0.
	RetryAfter time.Duration
}

func (e *ProblemError) Error() string {
	msg := fmt.Sprintf("nakadi: %s: %d", e.Op, e.Status)
	if e.Title != "" {
		msg += " " + e.Title
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is matches the sentinel of the status.
func (e *ProblemError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrSubscriptionNotFound:
		return e.Status == http.StatusNotFound && e.Op != opCreate && e.Op != opEventType
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUnprocessable:
		return e.Status == http.StatusUnprocessableEntity
	case ErrSessionGone:
		return e.Status == http.StatusUnprocessableEntity && e.Op == opCommit
	case ErrTooManyRequests:
		return e.Status == http.StatusTooManyRequests
	case ErrServer:
		return e.Status >= 500
	}
	return false
}

// Fatal reports whether err means this consumer cannot go on without an
// operator: 403 (no access, blocked) or 404 (subscription gone).
func Fatal(err error) bool {
	return errors.Is(err, ErrForbidden) || errors.Is(err, ErrSubscriptionNotFound)
}

// Transient reports whether retrying the same request may succeed: network
// errors, idle timeouts, ends of streams, 409, 429 and 5xx.
func Transient(err error) bool {
	var pe *ProblemError
	if !errors.As(err, &pe) {
		return err != nil
	}
	return pe.Status == http.StatusConflict || pe.Status == http.StatusTooManyRequests || pe.Status >= 500
}

// retryAfter returns the Retry-After of err, if any.
func retryAfter(err error) time.Duration {
	var pe *ProblemError
	if errors.As(err, &pe) {
		return pe.RetryAfter
	}
	return 0
}

// problemFrom builds a ProblemError from an answer's status, header and body.
func problemFrom(op string, resp *http.Response, body []byte) *ProblemError {
	pe := &ProblemError{Op: op, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil {
		pe.Type, pe.Title, pe.Detail = p.Type, p.Title, p.Detail
	} else {
		pe.Detail = clip(string(body), 200)
	}
	if pe.Title == "" {
		pe.Title = http.StatusText(resp.StatusCode)
	}
	return pe
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
