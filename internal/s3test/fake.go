package s3test

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Fake is gofakes3 (in memory) behind an httptest server, with fault
// injection. gofakes3 accepts any credentials.
type Fake struct {
	Server
	*Faults
	backend *s3mem.Backend
}

// StartFake starts gofakes3 with one bucket; it stops at test cleanup.
func StartFake(t testing.TB) *Fake {
	t.Helper()
	backend := s3mem.New()
	const bucket = "materializer-test"
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	f := &Fake{Faults: &Faults{}, backend: backend}
	fake := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	srv := httptest.NewServer(f.Wrap(fake))
	t.Cleanup(srv.Close)
	f.Server = Server{Endpoint: srv.URL, Bucket: bucket, Creds: Creds{AccessKeyID: "fake-id", SecretAccessKey: "fake-secret"}}
	return f
}

// PutDirect stores an object in the backend without HTTP (a competing
// writer that never goes through the code under test).
func (f *Fake) PutDirect(key string, body []byte, meta map[string]string) error {
	_, err := f.backend.PutObject(f.Bucket, key, meta, bytes.NewReader(body), int64(len(body)), nil)
	return err
}
