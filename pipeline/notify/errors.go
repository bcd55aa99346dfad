package notify

import "errors"

var (
	// ErrUnavailable: NATS or JetStream cannot be reached now (disconnected,
	// reconnecting, ack timeouts, no stream leader). Retry later.
	ErrUnavailable = errors.New("notify: nats unavailable")
	// ErrPermanent marks failures a retry will not fix.
	ErrPermanent = errors.New("notify: permanent failure")
	// ErrStreamMismatch: the configured stream exists but does not capture
	// the notice subjects (permanent until an operator fixes it).
	ErrStreamMismatch = permanentSentinel("notify: stream does not cover the notice subjects")
	// ErrConfig: an option or argument cannot be used (permanent).
	ErrConfig = permanentSentinel("notify: bad configuration")
	// ErrClosed: the Publisher was closed (permanent).
	ErrClosed = permanentSentinel("notify: publisher closed")
)

// Retryable reports whether a failed Publish may succeed later.
func Retryable(err error) bool { return err != nil && !errors.Is(err, ErrPermanent) }

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// permanentSentinel is a sentinel that is also ErrPermanent.
func permanentSentinel(text string) error { return &permanentError{err: errors.New(text)} }

func permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return &permanentError{err: err}
}
