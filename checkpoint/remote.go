package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"materializer/internal/datadir"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"materializer/pipeline/blobstore"
)

// Remote layout under the [checkpoint] url:
//
//	objects/<sha256>          the content of a checkpoint file
//	manifests/<id>.json       a checkpoint; written after all its objects
//
// Objects are content-addressed: an SST shared by many checkpoints (or by a
// restored daemon, whose Pebble continues the file numbering of the one it
// came from) is stored once, and two different files can never collide
// under one key. A checkpoint exists exactly when its manifest does;
// objects no manifest names are garbage, removed by Prune after a grace
// period.
const (
	objectsPrefix   = "objects/"
	manifestsPrefix = "manifests/"
)

// RemoteOptions configure a Remote.
type RemoteOptions struct {
	// Concurrency of uploads and downloads; default 4.
	Concurrency int
	// Grace is how old an unreferenced object must be before Prune removes
	// it, so a concurrent upload is never cut short; default 1h.
	Grace time.Duration
	Now   func() time.Time
}

// Remote is the remote copy of checkpoints in a blobstore.Store (s3://
// or file://).
type Remote struct {
	store blobstore.Store
	o     RemoteOptions
}

// NewRemote returns a Remote over store.
func NewRemote(store blobstore.Store, o RemoteOptions) *Remote {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Grace == 0 {
		o.Grace = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Remote{store: store, o: o}
}

func objectKey(sha string) string      { return objectsPrefix + sha }
func manifestKey(id string) string     { return manifestsPrefix + id + ".json" }
func (r *Remote) url(id string) string { return r.store.URL(manifestKey(id)) }

// UploadStats counts what one upload sent.
type UploadStats struct {
	Files    int   `json:"files"`    // distinct objects the checkpoint needs
	Uploaded int   `json:"uploaded"` // objects sent
	Bytes    int64 `json:"bytes"`    // bytes sent
	Skipped  int   `json:"skipped"`  // objects already there
}

// Upload copies the local checkpoint in dir to the store: the objects the
// store lacks (by content), then the manifest.
func (r *Remote) Upload(ctx context.Context, dir string, m *Manifest) (UploadStats, error) {
	var st UploadStats
	objects, err := r.objects(ctx)
	if err != nil {
		return st, err
	}
	have := sizes(objects)
	need := map[string]File{}
	for _, f := range m.Files {
		need[f.SHA256] = f
	}
	st.Files = len(need)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.Concurrency)
	var sent []File
	for sha, f := range need {
		if size, ok := have[objectKey(sha)]; ok && size == f.Size {
			st.Skipped++
			continue
		}
		sent = append(sent, f)
		g.Go(func() error { return r.putFile(gctx, filepath.Join(dir, filepath.FromSlash(f.Path)), f) })
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	for _, f := range sent {
		st.Uploaded++
		st.Bytes += f.Size
	}
	data := encodeManifest(m)
	if _, err := r.store.Put(ctx, manifestKey(m.ID), bytes.NewReader(data), int64(len(data)),
		blobstore.PutMeta{ContentType: "application/json"}); err != nil {
		return st, fmt.Errorf("checkpoint: upload manifest %s: %w", m.ID, err)
	}
	st.Bytes += int64(len(data))
	return st, nil
}

// putFile uploads one file as its object, checking that the bytes sent
// are the bytes the manifest names.
func (r *Remote) putFile(ctx context.Context, path string, f File) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("checkpoint: upload %s: %w", f.Path, err)
	}
	defer func() { _ = src.Close() }()
	stored, err := r.store.Put(ctx, objectKey(f.SHA256), src, f.Size, blobstore.PutMeta{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("checkpoint: upload %s: %w", f.Path, err)
	}
	if stored.SHA256 != f.SHA256 {
		return fmt.Errorf("%w: %s changed since it was hashed", ErrInvalid, f.Path)
	}
	return nil
}

// objects returns every object key with its size.
func (r *Remote) objects(ctx context.Context) ([]blobstore.ObjectInfo, error) {
	list, err := r.store.List(ctx, objectsPrefix)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list remote objects: %w", err)
	}
	return list, nil
}

// sizes maps the listed objects' keys to their sizes.
func sizes(objects []blobstore.ObjectInfo) map[string]int64 {
	out := make(map[string]int64, len(objects))
	for _, o := range objects {
		out[o.Key] = o.Size
	}
	return out
}

// Manifest reads one remote manifest; ErrNotFound when there is none.
func (r *Remote) Manifest(ctx context.Context, id string) (*Manifest, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	rc, err := r.store.Get(ctx, manifestKey(id))
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, r.url(id))
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: read %s: %w", r.url(id), err)
	}
	defer func() { _ = rc.Close() }()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: read %s: %w", r.url(id), err)
	}
	m, err := decodeManifest(data)
	if err == nil && m.ID != id {
		err = fmt.Errorf("%w: %s names id %s", ErrInvalid, r.url(id), m.ID)
	}
	return m, err
}

// List lists the remote checkpoints, newest first. One whose manifest does
// not read, or names an object that is missing or has another size, is
// listed with Invalid set.
func (r *Remote) List(ctx context.Context) ([]Info, error) {
	list, _, err := r.list(ctx)
	out := make([]Info, len(list))
	for i, l := range list {
		out[i] = l.Info
	}
	return out, err
}

// listed is a remote checkpoint with its manifest (nil when unreadable).
type listed struct {
	Info
	m *Manifest
}

// list also returns the object listing it checked the manifests against.
// It lists the manifests before the objects: a manifest is written after
// its objects, so every manifest it sees has its objects in the listing
// (reusing the older listing of an upload would break that when another
// daemon writes to the same store).
func (r *Remote) list(ctx context.Context) ([]listed, []blobstore.ObjectInfo, error) {
	ids, err := r.manifestIDs(ctx)
	if err != nil {
		return nil, nil, err
	}
	objects, err := r.objects(ctx)
	if err != nil {
		return nil, nil, err
	}
	have := sizes(objects)
	out := make([]listed, 0, len(ids))
	for _, id := range ids {
		m, err := r.Manifest(ctx, id)
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, ErrInvalid) {
				return nil, nil, err
			}
			out = append(out, listed{Info: Info{ID: id, Where: "remote", Location: r.url(id), Invalid: err.Error()}})
			continue
		}
		l := listed{Info: infoOf(m, "remote", r.url(id)), m: m}
		for _, f := range m.Files {
			if size, ok := have[objectKey(f.SHA256)]; !ok || size != f.Size {
				l.Invalid = fmt.Sprintf("object of %s (%s) is missing", f.Path, objectKey(f.SHA256))
				break
			}
		}
		out = append(out, l)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, objects, nil
}

// manifestIDs lists the ids that have a manifest.
func (r *Remote) manifestIDs(ctx context.Context) ([]string, error) {
	list, err := r.store.List(ctx, manifestsPrefix)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list remote checkpoints: %w", err)
	}
	var ids []string
	for _, o := range list {
		id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, manifestsPrefix), ".json")
		if ok && checkID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// PruneStats counts what Prune removed.
type PruneStats struct {
	Manifests int `json:"manifests"`
	Objects   int `json:"objects"`
}

// Prune keeps the newest keep valid remote checkpoints: older manifests
// go first, then every object that no remaining manifest names and that is
// older than the grace period (garbage of half-finished uploads too). An
// invalid manifest newer than the newest valid one stays (for the
// operator); older ones go.
func (r *Remote) Prune(ctx context.Context, keep int) (PruneStats, error) {
	var st PruneStats
	list, objects, err := r.list(ctx)
	if err != nil {
		return st, err
	}
	referenced := map[string]bool{}
	kept := 0
	for _, c := range list { // newest first
		switch {
		case c.Invalid == "" && kept < keep:
			kept++
		case c.Invalid != "" && kept == 0:
		default:
			if err := r.store.Delete(ctx, manifestKey(c.ID)); err != nil {
				return st, fmt.Errorf("checkpoint: remove remote checkpoint %s: %w", c.ID, err)
			}
			st.Manifests++
			continue
		}
		if c.m != nil {
			for _, f := range c.m.Files {
				referenced[objectKey(f.SHA256)] = true
			}
		}
	}
	return st, r.collect(ctx, objects, referenced, &st)
}

// collect removes the listed objects that are unreferenced and older than
// the grace period (what was uploaded since the listing is younger).
func (r *Remote) collect(ctx context.Context, objects []blobstore.ObjectInfo, referenced map[string]bool, st *PruneStats) error {
	cutoff := r.o.Now().Add(-r.o.Grace)
	for _, o := range objects {
		if referenced[o.Key] || o.LastModified.After(cutoff) {
			continue
		}
		if err := r.store.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("checkpoint: remove remote object: %w", err)
		}
		st.Objects++
	}
	return nil
}

// Fetch downloads the checkpoint m into dst (state/ and staging/),
// verifying every object's size and sha256 while it streams.
func (r *Remote) Fetch(ctx context.Context, m *Manifest, dst string) error {
	for _, sub := range []string{datadir.StateName, datadir.StagingName} {
		if err := os.MkdirAll(filepath.Join(dst, sub), 0o750); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.Concurrency)
	for _, f := range m.Files {
		g.Go(func() error { return r.fetchFile(gctx, f, filepath.Join(dst, filepath.FromSlash(f.Path))) })
	}
	return g.Wait()
}

func (r *Remote) fetchFile(ctx context.Context, f File, path string) error {
	rc, err := r.store.Get(ctx, objectKey(f.SHA256))
	if errors.Is(err, blobstore.ErrNotFound) {
		return fmt.Errorf("%w: object of %s (%s) is missing", ErrInvalid, f.Path, objectKey(f.SHA256))
	}
	if err != nil {
		return fmt.Errorf("checkpoint: download %s: %w", f.Path, err)
	}
	defer func() { _ = rc.Close() }()
	n, sum, err := writeHashed(path, io.LimitReader(rc, f.Size+1))
	if err != nil {
		return fmt.Errorf("checkpoint: download %s: %w", f.Path, err)
	}
	return verify(f, n, sum)
}

// verify compares what was read with the manifest's entry.
func verify(f File, size int64, sum string) error {
	if size != f.Size {
		return fmt.Errorf("%w: %s has %d bytes, the manifest says %d", ErrInvalid, f.Path, size, f.Size)
	}
	if sum != f.SHA256 {
		return fmt.Errorf("%w: %s has sha256 %s, the manifest says %s (corrupt)", ErrInvalid, f.Path, sum, f.SHA256)
	}
	return nil
}
