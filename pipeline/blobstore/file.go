package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"materializer/internal/fsync"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// fileStore delivers into a directory tree: the key is the path relative
// to root. Files appear atomically (temp file, fsync, link without
// replacing, fsync of the directory) and are never overwritten.
type fileStore struct {
	root    string
	mode    os.FileMode
	metrics *metrics
	opts    Options
}

func openFile(u *url.URL, opts Options) (*fileStore, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("%w: %q: file URLs name a local path (file:///abs/dir)", ErrConfig, u.String())
	}
	root := filepath.Clean(u.Path)
	if !filepath.IsAbs(root) || u.Path == "" {
		return nil, fmt.Errorf("%w: %q: the directory must be absolute (file:///abs/dir)", ErrConfig, u.String())
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &fileStore{
		root:    root,
		mode:    os.FileMode(opts.FileMode),
		metrics: newMetrics(opts.Registerer),
		opts:    opts,
	}, nil
}

func (s *fileStore) URL(key string) string {
	return "file://" + path.Join(filepath.ToSlash(s.root), key)
}

func (s *fileStore) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

// Put writes the file under a temp name beside its final path, then links
// it into place; an existing file is compared, never replaced.
func (s *fileStore) Put(ctx context.Context, key string, src io.ReaderAt, size int64, meta PutMeta) (Stored, error) {
	start := s.opts.Now()
	st, err := s.put(ctx, key, src, size)
	s.metrics.observePut("file", st, err, s.opts.Now().Sub(start))
	if err != nil {
		return Stored{}, err
	}
	return st, nil
}

func (s *fileStore) put(ctx context.Context, key string, src io.ReaderAt, size int64) (Stored, error) {
	if err := checkKey(key); err != nil {
		return Stored{}, err
	}
	st := Stored{Key: key, URL: s.URL(key), Size: size}
	final := s.path(key)
	dir := filepath.Dir(final)
	if _, err := os.Lstat(final); err == nil {
		removeStaleTemps(dir, filepath.Base(final))
		return s.compareExisting(ctx, st, src)
	}
	if err := mkdirAllSync(s.root, dir); err != nil {
		return st, fmt.Errorf("blobstore: put %q: %w", key, err)
	}
	sum, tmp, err := s.writeTemp(ctx, src, size, final)
	if err != nil {
		return st, fmt.Errorf("blobstore: put %q: %w", key, err)
	}
	defer os.Remove(tmp)
	st.SHA256 = sum
	if err := linkNoReplace(tmp, final); err != nil {
		// Taken (EEXIST), or a competing Put that won swept our temp file.
		if _, serr := os.Lstat(final); serr == nil {
			removeStaleTemps(dir, filepath.Base(final))
			return s.compareExisting(ctx, st, src)
		}
		return st, fmt.Errorf("blobstore: put %q: %w", key, err)
	}
	removeStaleTemps(dir, filepath.Base(final)) // ours, and any a crash left
	if err := fsync.Dir(dir); err != nil {
		return st, fmt.Errorf("blobstore: put %q: %w", key, err)
	}
	return st, nil
}

// writeTemp copies src into a new temp file beside final, fsyncs it and
// returns its sha256 and name.
func (s *fileStore) writeTemp(ctx context.Context, src io.ReaderAt, size int64, final string) (string, string, error) {
	f, err := os.CreateTemp(filepath.Dir(final), tempPattern(filepath.Base(final)))
	if err != nil {
		return "", "", err
	}
	sum, err := fillTemp(ctx, f, src, size, s.mode)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", "", err
	}
	return sum, f.Name(), nil
}

func fillTemp(ctx context.Context, f *os.File, src io.ReaderAt, size int64, mode os.FileMode) (string, error) {
	h := newHashWriter(f)
	n, err := copyCtx(ctx, h, io.NewSectionReader(src, 0, size))
	if err != nil {
		return "", err
	}
	if n != size {
		return "", permanent(fmt.Errorf("source holds %d bytes, want %d", n, size))
	}
	if err := f.Chmod(mode); err != nil {
		return "", err
	}
	return h.sum(), f.Sync()
}

// compareExisting decides between "already delivered" and ErrConflict by
// size, then by sha256 of both sides.
func (s *fileStore) compareExisting(ctx context.Context, st Stored, src io.ReaderAt) (Stored, error) {
	fi, err := os.Stat(s.path(st.Key))
	if err != nil {
		return st, fmt.Errorf("blobstore: put %q: %w", st.Key, err)
	}
	if fi.Size() != st.Size || !fi.Mode().IsRegular() {
		return st, conflict(st.Key, fmt.Sprintf("existing file has %d bytes, ours %d", fi.Size(), st.Size))
	}
	if st.SHA256 == "" {
		if st.SHA256, err = hashSource(ctx, src, st.Size); err != nil {
			return st, fmt.Errorf("blobstore: put %q: %w", st.Key, err)
		}
	}
	theirs, err := s.hashFile(ctx, st.Key)
	if err != nil {
		return st, fmt.Errorf("blobstore: put %q: %w", st.Key, err)
	}
	if theirs != st.SHA256 {
		return st, conflict(st.Key, "existing file has sha256 "+theirs+", ours "+st.SHA256)
	}
	st.AlreadyExisted = true
	return st, nil
}

func (s *fileStore) hashFile(ctx context.Context, key string) (string, error) {
	f, err := os.Open(s.path(key))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum, _, err := hashReader(ctx, f)
	return sum, err
}

// Head stats the file; SHA256 stays empty (it would need a full read).
func (s *fileStore) Head(_ context.Context, key string) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	fi, err := os.Stat(s.path(key))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return ObjectInfo{}, fmt.Errorf("%w: %s", ErrNotFound, s.URL(key))
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("blobstore: head %q: %w", key, err)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

func (s *fileStore) Get(_ context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, s.URL(key))
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: get %q: %w", key, err)
	}
	return f, nil
}

// Delete removes the file and syncs its directory; empty directories stay.
func (s *fileStore) Delete(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	p := s.path(key)
	if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("blobstore: delete %q: %w", key, err)
	}
	if err := fsync.Dir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("blobstore: delete %q: %w", key, err)
	}
	return nil
}

// List walks the directory holding prefix and keeps the regular files
// whose key starts with prefix; temp files are skipped.
func (s *fileStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.Type().IsRegular() || isTemp(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while walking
		}
		out = append(out, ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blobstore: list %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
