package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"time"

	"materializer/internal/redact"
)

// Store is where delivered files live. Keys are slash-separated paths
// relative to the store's root (bucket prefix or directory).
type Store interface {
	// Put stores size bytes of src under key unless the key exists. An
	// existing object with the same size and sha256 is success
	// (Stored.AlreadyExisted); with other content the error wraps
	// ErrConflict. src is read with ReadAt only, so one file can be shared.
	Put(ctx context.Context, key string, src io.ReaderAt, size int64, meta PutMeta) (Stored, error)
	// Head describes one object; ErrNotFound when it does not exist.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Get opens an object for reading; ErrNotFound when it does not exist.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the objects whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes an object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// URL names the object for humans and notices: s3://bucket/prefix/key
	// or file:///dir/key.
	URL(key string) string
}

// PutMeta describes the object being stored.
type PutMeta struct {
	// ContentType, e.g. "text/csv" or "application/gzip"; empty: the
	// store's default.
	ContentType string
	// Metadata is stored with S3 objects as x-amz-meta-* headers (keys
	// lower case). The key "sha256" is reserved: Put sets it.
	Metadata map[string]string
}

// Stored is the result of a successful Put.
type Stored struct {
	Key    string
	URL    string
	Size   int64
	SHA256 string // lower-case hex of the stored bytes
	// AlreadyExisted: the key already held these bytes, stored by an
	// earlier attempt (perhaps one whose response was lost) or another
	// writer; nothing was written.
	AlreadyExisted bool
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string // relative to the store's root
	Size         int64
	LastModified time.Time
	// SHA256 from the object's metadata; empty when unknown (List, the
	// file:// target, objects not written by this package).
	SHA256 string
}

// MetaSHA256 is the user-metadata key holding an object's sha256.
const MetaSHA256 = "sha256"

// Open returns the Store for rawURL: s3://bucket[/prefix] or
// file:///absolute/dir. It does not contact the store, so a daemon can
// start while the store is down.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold credentials
		}
		return nil, fmt.Errorf("%w: %q: %w", ErrConfig, redact.URL(rawURL), err)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: %q: no user info, query or fragment allowed", ErrConfig, redact.URL(rawURL))
	}
	switch u.Scheme {
	case "s3":
		return openS3(ctx, u, opts)
	case "file":
		return openFile(u, opts)
	}
	return nil, fmt.Errorf("%w: %q: scheme must be s3 or file", ErrConfig, redact.URL(rawURL))
}

// checkKey accepts clean relative slash paths: no leading or trailing
// slash, no empty, "." or ".." segments, no NUL or backslash.
func checkKey(key string) error {
	if key == "" || strings.ContainsAny(key, "\x00\\") || path.Clean(key) != key ||
		strings.HasPrefix(key, "/") || key == "." || key == ".." || strings.HasPrefix(key, "../") {
		return permanent(fmt.Errorf("%w: %q", ErrBadKey, key))
	}
	return nil
}
