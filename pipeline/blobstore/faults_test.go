package blobstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/s3test"
	"materializer/pipeline/blobstore"
)

type putResult struct {
	st  blobstore.Stored
	err error
}

func putAsync(t *testing.T, bs blobstore.Store, key string, data []byte) <-chan putResult {
	done := make(chan putResult, 1)
	go func() {
		st, err := bs.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data)), blobstore.PutMeta{})
		done <- putResult{st, err}
	}()
	return done
}

func failed(r s3test.Request) bool { return r.Status == 0 || r.Status >= 500 }

// objectWrites counts requests that wrote key: a 200 PutObject or a 200
// CompleteMultipartUpload.
func objectWrites(f *s3test.Faults, key string) int {
	return f.Count(func(r s3test.Request) bool {
		if r.Status != 200 || !strings.HasSuffix(r.Path, "/"+key) {
			return false
		}
		single := r.Method == http.MethodPut && !r.Query.Has("partNumber")
		complete := r.Method == http.MethodPost && r.Query.Has("uploadId")
		return single || complete
	})
}

// TestPutRetriesThroughOutage: the store fails every request for a while
// (throttling, 500s, dropped connections); Put keeps retrying with backoff
// and, once the store is back, the object arrives exactly once.
func TestPutRetriesThroughOutage(t *testing.T) {
	for _, fault := range []s3test.Fault{s3test.SlowDown, s3test.InternalError, s3test.DropConnection} {
		for _, size := range []int{100, 6 << 20} {
			t.Run(fmt.Sprintf("fault%d/size%d", fault, size), func(t *testing.T) {
				t.Parallel()
				fake := s3test.StartFake(t)
				reg := prometheus.NewRegistry()
				bs := mustOpen(t, fake.URL("p"), s3Options(t, fake.Server, blobstore.Options{
					MaxAttempts: 1000, PartSize: 5 << 20, MultipartThreshold: 5 << 20, Registerer: reg}))
				data := bytes.Repeat([]byte("x"), size)
				fake.Down(fault)
				done := putAsync(t, bs, "k.csv", data)
				eventually(t, "three failed requests", func() bool { return fake.Count(failed) >= 3 })
				fake.Up()
				res := <-done
				if res.err != nil || res.st.AlreadyExisted || res.st.SHA256 != sum(data) {
					t.Fatalf("Put = %+v, %v", res.st, res.err)
				}
				if n := objectWrites(fake.Faults, "k.csv"); n != 1 {
					t.Fatalf("object written %d times, want 1", n)
				}
				if got := readAll(t, bs, "k.csv"); !bytes.Equal(got, data) {
					t.Fatal("stored bytes differ")
				}
				if r := counter(t, reg, "materializer_deliver_retries_total"); r < 3 {
					t.Fatalf("retries metric = %v, want >= 3", r)
				}
			})
		}
	}
}

// TestPutGivesUpWithRetryableError: when the store stays down longer than
// MaxAttempts, Put returns an error the caller should retry later (the
// outbox keeps the file); the later Put stores it once.
func TestPutGivesUpWithRetryableError(t *testing.T) {
	fake := s3test.StartFake(t)
	reg := prometheus.NewRegistry()
	bs := mustOpen(t, fake.URL(""), s3Options(t, fake.Server, blobstore.Options{MaxAttempts: 3, Registerer: reg}))
	fake.Down(s3test.SlowDown)
	data := []byte("a\n1\n")
	_, err := put(t, bs, "k.csv", data)
	if err == nil || !blobstore.Retryable(err) || errors.Is(err, blobstore.ErrPermanent) {
		t.Fatalf("Put while down: %v, want a retryable error", err)
	}
	if n := fake.Count(failed); n != 3 {
		t.Fatalf("%d attempts, want MaxAttempts = 3", n)
	}
	fake.Up()
	if st := mustPut(t, bs, "k.csv", data); st.AlreadyExisted {
		t.Fatalf("Put after outage: %+v", st)
	}
	if n := objectWrites(fake.Faults, "k.csv"); n != 1 {
		t.Fatalf("object written %d times, want 1", n)
	}
	if c := counter(t, reg, "materializer_deliver_errors_total"); c != 1 {
		t.Fatalf("errors metric = %v, want 1", c)
	}
}

func isPart(r *http.Request) bool { return r.URL.Query().Has("partNumber") }

// TestMultipartFailureAborts: parts keep failing; Put gives up, aborts the
// multipart upload (nothing left behind) and a later Put succeeds.
func TestMultipartFailureAborts(t *testing.T) {
	fake := s3test.StartFake(t)
	bs := mustOpen(t, fake.URL(""), s3Options(t, fake.Server, blobstore.Options{
		MaxAttempts: 2, PartSize: 5 << 20, MultipartThreshold: 5 << 20}))
	f, want := writeFile(t, 11<<20, 3)
	fake.FailNext(1000, s3test.InternalError, isPart)
	_, err := bs.Put(ctxT(t), "big.csv", f, 11<<20, blobstore.PutMeta{})
	if !blobstore.Retryable(err) {
		t.Fatalf("Put: %v, want retryable", err)
	}
	if n := fake.Count(func(r s3test.Request) bool { return r.Method == http.MethodDelete && r.Query.Has("uploadId") }); n != 1 {
		t.Fatalf("%d aborts, want 1", n)
	}
	ups, err := fake.Client().ListMultipartUploads(ctxT(t), &s3.ListMultipartUploadsInput{Bucket: &fake.Bucket})
	if err != nil || len(ups.Uploads) != 0 {
		t.Fatalf("uploads left: %+v, %v", ups.Uploads, err)
	}
	fake.FailNext(0, 0, nil)
	st, err := bs.Put(ctxT(t), "big.csv", f, 11<<20, blobstore.PutMeta{})
	if err != nil || st.SHA256 != want {
		t.Fatalf("second Put: %+v, %v", st, err)
	}
}

// TestVersityDownThenUp: the real gateway is killed and restarted on the
// same port and directory while Put retries.
func TestVersityDownThenUp(t *testing.T) {
	v := s3test.StartVersity(t)
	reg := prometheus.NewRegistry()
	bs := mustOpen(t, v.URL("p"), s3Options(t, v.Server, blobstore.Options{MaxAttempts: 1000, Registerer: reg}))
	v.Stop()
	data := []byte("a,b\n1,2\n")
	done := putAsync(t, bs, "k.csv", data)
	eventually(t, "retries while versitygw is down", func() bool {
		return counter(t, reg, "materializer_deliver_retries_total") >= 3
	})
	v.Start()
	if res := <-done; res.err != nil || res.st.AlreadyExisted {
		t.Fatalf("Put = %+v, %v", res.st, res.err)
	}
	list, err := bs.List(ctxT(t), "")
	if err != nil || len(list) != 1 || list[0].Key != "k.csv" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if got := readAll(t, bs, "k.csv"); !bytes.Equal(got, data) {
		t.Fatal("stored bytes differ")
	}
}

// TestVersityMultipartThroughFaults: parts and the complete fail now and
// then on the way to the real gateway; the object arrives once, intact.
func TestVersityMultipartThroughFaults(t *testing.T) {
	v := s3test.StartVersity(t)
	p := s3test.Proxy(t, v.Server)
	bs := mustOpen(t, p.URL(""), s3Options(t, p.Server, blobstore.Options{
		MaxAttempts: 20, PartSize: 5 << 20, MultipartThreshold: 5 << 20}))
	f, want := writeFile(t, 16<<20, 4)
	var n int
	p.FailNext(1000, s3test.DropConnection, func(r *http.Request) bool {
		n++
		return n%2 == 0 // every other request
	})
	st, err := bs.Put(ctxT(t), "big.csv", f, 16<<20, blobstore.PutMeta{})
	if err != nil || st.SHA256 != want {
		t.Fatalf("Put = %+v, %v", st, err)
	}
	if got := sum(readAll(t, bs, "big.csv")); got != want {
		t.Fatalf("stored sha256 %s, want %s", got, want)
	}
	if p.Count(failed) == 0 {
		t.Fatal("no request failed: the test did not test anything")
	}
}

// TestPermanentErrors: wrong credentials and a missing bucket are not
// retried and are reported as permanent.
func TestPermanentErrors(t *testing.T) {
	v := s3test.StartVersity(t)
	wrong := v.Server
	wrong.Creds.SecretAccessKey = "not-the-secret"
	missing := v.Server
	missing.Bucket = "no-such-bucket"
	for name, srv := range map[string]s3test.Server{"wrong secret": wrong, "missing bucket": missing} {
		t.Run(name, func(t *testing.T) {
			p := s3test.Proxy(t, srv)
			bs := mustOpen(t, p.URL(""), s3Options(t, p.Server, blobstore.Options{MaxAttempts: 5}))
			_, err := put(t, bs, "k.csv", []byte("x"))
			if !errors.Is(err, blobstore.ErrPermanent) || blobstore.Retryable(err) {
				t.Fatalf("Put: %v, want permanent", err)
			}
			if strings.Contains(err.Error(), srv.Creds.SecretAccessKey) {
				t.Fatal("the secret appears in the error")
			}
			// A HEAD of a missing bucket's key is a bare 404 (no error
			// code), so Put goes on to the PUT, which names NoSuchBucket.
			seen := map[string]int{}
			for _, r := range p.Requests() {
				if seen[r.Method]++; seen[r.Method] > 1 {
					t.Fatalf("%s sent twice: permanent errors must not be retried", r.Method)
				}
			}
		})
	}
}

// TestRequestHeaders: SSE, content type and the sha256 metadata reach the
// store on PutObject and CreateMultipartUpload.
func TestRequestHeaders(t *testing.T) {
	for _, tc := range []struct{ sse, kms string }{{"AES256", ""}, {"aws:kms", "arn:aws:kms:eu-central-1:1:key/k"}, {"aws:kms", ""}} {
		for _, size := range []int64{10, 6 << 20} {
			t.Run(fmt.Sprintf("%s/%s/%d", tc.sse, tc.kms, size), func(t *testing.T) {
				fake := s3test.StartFake(t)
				bs := mustOpen(t, fake.URL(""), s3Options(t, fake.Server, blobstore.Options{
					SSE: tc.sse, KMSKeyID: tc.kms, PartSize: 5 << 20, MultipartThreshold: 5 << 20}))
				f, want := writeFile(t, size, 5)
				meta := blobstore.PutMeta{ContentType: "application/gzip", Metadata: map[string]string{"event-type": "a.b"}}
				if _, err := bs.Put(ctxT(t), "k.csv.gz", f, size, meta); err != nil {
					t.Fatal(err)
				}
				creates := 0
				for _, r := range fake.Requests() {
					isPut := r.Method == http.MethodPut && !r.Query.Has("partNumber")
					isCreate := r.Method == http.MethodPost && r.Query.Has("uploads")
					if !isPut && !isCreate {
						continue
					}
					creates++
					h := r.Header
					if h.Get("X-Amz-Server-Side-Encryption") != tc.sse || h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != tc.kms ||
						h.Get("Content-Type") != "application/gzip" || h.Get("X-Amz-Meta-Sha256") != want ||
						h.Get("X-Amz-Meta-Event-Type") != "a.b" || (isPut && h.Get("If-None-Match") != "*") {
						t.Errorf("%s %s headers: %v", r.Method, r.Path, h)
					}
				}
				if creates != 1 {
					t.Fatalf("%d object writes, want 1", creates)
				}
			})
		}
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		url  string
		opts blobstore.Options
	}{
		{"s3://", blobstore.Options{}},
		{"s3://bucket/a/../b", blobstore.Options{Region: "x"}},
		{"s3://bucket?versionId=1", blobstore.Options{Region: "x"}},
		{"s3://key:secret@bucket/p", blobstore.Options{Region: "x"}},
		{"file://relative/dir", blobstore.Options{}},
		{"file://host/dir", blobstore.Options{}},
		{"ftp://host/dir", blobstore.Options{}},
		{"file://" + dir, blobstore.Options{SSE: "aes"}},
		{"file://" + dir, blobstore.Options{KMSKeyID: "k"}},
		{"file://" + dir, blobstore.Options{PartSize: 1 << 20}},
		{"s3://bucket", blobstore.Options{Region: "x", AccessKeyIDFile: "/nonexistent"}},
		{"s3://bucket", blobstore.Options{Region: "x", AccessKeyIDFile: "/nonexistent", SecretAccessKeyFile: "/nonexistent"}},
	} {
		_, err := blobstore.Open(ctxT(t), tc.url, tc.opts)
		if !errors.Is(err, blobstore.ErrConfig) {
			t.Errorf("Open(%q, %+v): %v, want ErrConfig", tc.url, tc.opts, err)
		}
		if err != nil && strings.Contains(err.Error(), "key:secret") {
			t.Errorf("Open(%q): error shows the secret: %v", tc.url, err)
		}
	}
}

func TestURLs(t *testing.T) {
	dir := t.TempDir()
	id, secret := s3test.Server{Creds: s3test.Creds{AccessKeyID: "id", SecretAccessKey: "s"}}.CredFiles(t)
	for _, tc := range []struct{ url, want string }{
		{"s3://bucket", "s3://bucket/a/b.csv"},
		{"s3://bucket/", "s3://bucket/a/b.csv"},
		{"s3://bucket/pre/fix/", "s3://bucket/pre/fix/a/b.csv"},
		{"file://" + dir + "/x/../out", "file://" + dir + "/out/a/b.csv"},
		{"file://localhost" + dir + "/out2/", "file://" + dir + "/out2/a/b.csv"},
	} {
		bs := mustOpen(t, tc.url, blobstore.Options{Region: "eu-central-1", AccessKeyIDFile: id, SecretAccessKeyFile: secret})
		if got := bs.URL("a/b.csv"); got != tc.want {
			t.Errorf("Open(%q).URL = %q, want %q", tc.url, got, tc.want)
		}
	}
}

// TestPutWithoutListPermission: HEADs of missing keys answer 403 (no
// s3:ListBucket on AWS); Put still stores the file, single and multipart.
func TestPutWithoutListPermission(t *testing.T) {
	fake := s3test.StartFake(t)
	bs := mustOpen(t, fake.URL(""), s3Options(t, fake.Server, blobstore.Options{PartSize: 5 << 20, MultipartThreshold: 5 << 20}))
	fake.FailNext(1000, s3test.AccessDenied, func(r *http.Request) bool { return r.Method == http.MethodHead })
	for _, size := range []int64{10, 6 << 20} {
		f, want := writeFile(t, size, 6)
		key := fmt.Sprintf("k%d.csv", size)
		st, err := bs.Put(ctxT(t), key, f, size, blobstore.PutMeta{})
		if err != nil || st.SHA256 != want {
			t.Fatalf("Put(%d bytes) = %+v, %v", size, st, err)
		}
	}
	if n := fake.Count(func(r s3test.Request) bool { return r.Status == 403 }); n != 3 {
		t.Fatalf("%d HEADs answered 403, want 3 (the test must exercise the forbidden HEADs)", n)
	}
}
