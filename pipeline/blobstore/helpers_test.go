package blobstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/s3test"
	"materializer/pipeline/blobstore"
)

// target is one store under test with the way to open it.
type target struct {
	name string
	open func(t *testing.T, o blobstore.Options) blobstore.Store
	s3   *s3test.Server // nil for file://
}

func fileTarget() target {
	return target{name: "file", open: func(t *testing.T, o blobstore.Options) blobstore.Store {
		return mustOpen(t, "file://"+t.TempDir()+"/out", o)
	}}
}

func fakeTarget(t *testing.T) (target, *s3test.Fake) {
	f := s3test.StartFake(t)
	return s3Target("gofakes3", f.Server), f
}

func versityTarget(t *testing.T) (target, *s3test.Versity) {
	v := s3test.StartVersity(t)
	return s3Target("versitygw", v.Server), v
}

func s3Target(name string, srv s3test.Server) target {
	return target{name: name, s3: &srv, open: func(t *testing.T, o blobstore.Options) blobstore.Store {
		return mustOpen(t, srv.URL("files/v1"), s3Options(t, srv, o))
	}}
}

// s3Options points o at srv with credentials from files and short backoff.
func s3Options(t *testing.T, srv s3test.Server, o blobstore.Options) blobstore.Options {
	o.Endpoint = srv.Endpoint
	o.AccessKeyIDFile, o.SecretAccessKeyFile = srv.CredFiles(t)
	if o.MinBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
	}
	return o
}

func mustOpen(t *testing.T, url string, o blobstore.Options) blobstore.Store {
	t.Helper()
	bs, err := blobstore.Open(context.Background(), url, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	return bs
}

// writeFile creates a file of size pseudo-random bytes (seeded) and
// returns it open for reading with its sha256.
func writeFile(t testing.TB, size int64, seed uint64) (*os.File, string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "src.csv"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	return f, hex.EncodeToString(h.Sum(nil))
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// counter reads a counter of the registry, summed over all label values.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
