package load

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"

	"materializer/pipeline/blobstore"
	"materializer/pipeline/notify"
)

// ErrBadFile marks a file the loader cannot load as it is: missing from
// storage, not matching its notice (size, sha256, columns, URL), or data
// PostgreSQL refuses. It is retried with backoff and parked after
// load.max_attempts; an outage (storage or PostgreSQL unreachable) is not
// one.
var ErrBadFile = errors.New("load: bad file")

func badFile(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadFile, fmt.Sprintf(format, args...))
}

// fetched is one file downloaded and checked against its notice, in a
// temporary file removed by Close.
type fetched struct {
	notice notify.Notice
	f      *os.File
	beat   func() // called as the file is read: a long COPY is progress
}

// fetch downloads the notice's object into a temporary file, counting its
// bytes and hashing it, and checks both against the notice. A store that
// cannot be reached is an outage, not ErrBadFile.
func fetch(ctx context.Context, store blobstore.Store, n notify.Notice, tmpDir string) (*fetched, error) {
	if want := store.URL(n.ID); n.URL != want {
		return nil, badFile("notice %s names %s, but the configured storage holds it at %s", n.ID, n.URL, want)
	}
	body, err := store.Get(ctx, n.ID)
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		return nil, badFile("%s: the object does not exist", n.URL)
	case err != nil && !blobstore.Retryable(err):
		return nil, badFile("%s: %v", n.URL, err)
	case err != nil:
		return nil, fmt.Errorf("load: fetch %s: %w", n.URL, err)
	}
	defer body.Close()
	f, err := os.CreateTemp(tmpDir, "materializer-load-*")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	os.Remove(f.Name()) // unlinked: nothing is left behind, even by a crash
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), body)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("load: fetch %s: %w", n.URL, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if size != n.Bytes || sum != n.SHA256 {
		f.Close()
		return nil, badFile("%s: the object has %d bytes with sha256 %s, the notice says %d bytes with sha256 %s",
			n.URL, size, sum, n.Bytes, n.SHA256)
	}
	return &fetched{notice: n, f: f}, nil
}

// csv returns the file's CSV text (decompressed when gzip).
func (f *fetched) csv() (io.Reader, error) {
	if _, err := f.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	switch f.notice.Compression {
	case "gzip":
		zr, err := gzip.NewReader(f.f)
		if err != nil {
			return nil, badFile("%s: not gzip: %v", f.notice.URL, err)
		}
		return zr, nil
	case "none", "":
		return f.f, nil
	}
	return nil, badFile("%s: unknown compression %q", f.notice.URL, f.notice.Compression)
}

func (f *fetched) Close() { f.f.Close() }
