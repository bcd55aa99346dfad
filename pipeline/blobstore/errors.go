package blobstore

import (
	"errors"
	"fmt"
)

var (
	// ErrConflict: the key already exists with different content. It is
	// permanent: the existing object is never overwritten.
	ErrConflict = errors.New("blobstore: object exists with different content")
	// ErrNotFound: no object under that key.
	ErrNotFound = errors.New("blobstore: object not found")
	// ErrPermanent marks failures a retry will not fix (bad key, access
	// denied, missing bucket, conflict, unreadable source file).
	ErrPermanent = errors.New("blobstore: permanent failure")
	// ErrConfig: the storage URL or an option cannot be used.
	ErrConfig = errors.New("blobstore: bad configuration")
	// ErrBadKey: the object key is not a clean relative path.
	ErrBadKey = errors.New("blobstore: bad object key")
)

// Retryable reports whether a failed operation may succeed when tried
// again later (the store was down, throttled, or the network failed).
func Retryable(err error) bool {
	return err != nil && !errors.Is(err, ErrPermanent)
}

// permanentError marks its cause as permanent without changing its text.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

func permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return &permanentError{err: err}
}

func conflict(key, why string) error {
	return permanent(fmt.Errorf("put %q: %s: %w", key, why, ErrConflict))
}
