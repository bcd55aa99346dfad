package nakadi

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// tokenCheckEvery is how often the token file's metadata is looked at.
const tokenCheckEvery = time.Second

// tokenSource reads the bearer token from a file, again when the file's
// modification time or size changes, and on demand after a 401. The token
// is never logged; errors name the file only.
type tokenSource struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	token   string
	mtime   time.Time
	size    int64
	checked time.Time
}

// get returns the current token ("" without a token file).
func (t *tokenSource) get() (string, error) {
	if t.path == "" {
		return "", nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.token != "" && now.Sub(t.checked) < tokenCheckEvery {
		return t.token, nil
	}
	t.checked = now
	fi, err := os.Stat(t.path)
	if err != nil {
		return t.token, fmt.Errorf("nakadi: token file %s: %w", t.path, err)
	}
	if t.token != "" && fi.ModTime().Equal(t.mtime) && fi.Size() == t.size {
		return t.token, nil
	}
	return t.read(fi)
}

// refresh re-reads the file now (after a 401).
func (t *tokenSource) refresh() error {
	if t.path == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.path)
	if err != nil {
		return fmt.Errorf("nakadi: token file %s: %w", t.path, err)
	}
	_, err = t.read(fi)
	return err
}

// read loads the token; called with t.mu held.
func (t *tokenSource) read(fi os.FileInfo) (string, error) {
	b, err := os.ReadFile(t.path)
	if err != nil {
		return t.token, fmt.Errorf("nakadi: token file %s: %w", t.path, err)
	}
	tok := string(bytes.TrimSpace(b))
	if tok == "" {
		return t.token, fmt.Errorf("nakadi: token file %s is empty", t.path)
	}
	t.token, t.mtime, t.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}
