package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"materializer/internal/s3test"
	"materializer/pipeline/blobstore"
)

// TestStoreIfNoneMatch records what each store does with If-None-Match: *
// on an existing key, with a plain SDK client. The findings are in the
// README: both refuse PutObject with 412; versitygw also refuses
// CompleteMultipartUpload, gofakes3 ignores the header there and
// overwrites (so Put heads the key right before completing).
func TestStoreIfNoneMatch(t *testing.T) {
	cases := []struct {
		name             string
		start            func(*testing.T) s3test.Server
		completeHonoured bool
	}{
		{"gofakes3", func(t *testing.T) s3test.Server { return s3test.StartFake(t).Server }, false},
		{"versitygw", func(t *testing.T) s3test.Server { return s3test.StartVersity(t).Server }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := tc.start(t)
			c, ctx := srv.Client(), ctxT(t)
			rawPut(t, c, srv.Bucket, "k", "first")
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: aws.String("k"),
				Body: strings.NewReader("second"), IfNoneMatch: aws.String("*")})
			if code := apiCode(err); code != "PreconditionFailed" {
				t.Errorf("PutObject If-None-Match on existing key: %v, want PreconditionFailed", err)
			}
			err = completeOver(ctx, c, srv.Bucket, "k", "third")
			if honoured := apiCode(err) == "PreconditionFailed"; honoured != tc.completeHonoured {
				t.Errorf("CompleteMultipartUpload If-None-Match on existing key: err = %v, honoured = %v, want %v",
					err, honoured, tc.completeHonoured)
			}
		})
	}
}

func rawPut(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(ctxT(t), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

func completeOver(ctx context.Context, c *s3.Client, bucket, key, body string) error {
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return err
	}
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader(body)})
	if err != nil {
		return err
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &bucket, Key: &key,
		UploadId: up.UploadId, IfNoneMatch: aws.String("*"),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}})
	return err
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isObjectPut(key string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/"+key) && !r.URL.Query().Has("partNumber")
	}
}

// TestPutLosesRaceToOtherWriter: another writer stores the key between
// our Head and our PutObject. The store answers 412; Put then compares.
func TestPutLosesRaceToOtherWriter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		theirs    []byte
		wantErr   error
		wantExist bool
	}{
		{"same bytes, no sha256 metadata", []byte("a,b\n1,2\n"), nil, true},
		{"other bytes", []byte("a,b\n9,9\n"), blobstore.ErrConflict, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := s3test.StartFake(t)
			bs := mustOpen(t, fake.URL(""), s3Options(t, fake.Server, blobstore.Options{}))
			var once atomic.Bool
			fake.Before(func(r *http.Request) {
				if isObjectPut("x.csv")(r) && once.CompareAndSwap(false, true) {
					if err := fake.PutDirect("x.csv", tc.theirs, nil); err != nil {
						t.Error(err)
					}
				}
			})
			ours := []byte("a,b\n1,2\n")
			st, err := bs.Put(ctxT(t), "x.csv", bytes.NewReader(ours), int64(len(ours)), blobstore.PutMeta{})
			if !errors.Is(err, tc.wantErr) || st.AlreadyExisted != tc.wantExist {
				t.Fatalf("Put = %+v, %v; want AlreadyExisted=%v err=%v", st, err, tc.wantExist, tc.wantErr)
			}
			if n := fake.Count(func(r s3test.Request) bool { return r.Method == http.MethodPut && r.Status == 412 }); n != 1 {
				t.Fatalf("%d PUTs answered 412, want 1", n)
			}
			if got := readAll(t, bs, "x.csv"); !bytes.Equal(got, tc.theirs) {
				t.Fatalf("object overwritten: %q", got)
			}
		})
	}
}

// TestMultipartLosesRaceOnFakeStore: gofakes3 ignores If-None-Match on
// CompleteMultipartUpload, so the Head just before completing must catch
// an object that appeared during the upload; the upload is aborted.
func TestMultipartLosesRaceOnFakeStore(t *testing.T) {
	fake := s3test.StartFake(t)
	bs := mustOpen(t, fake.URL(""), s3Options(t, fake.Server, blobstore.Options{PartSize: 5 << 20, MultipartThreshold: 5 << 20}))
	var once atomic.Bool
	fake.Before(func(r *http.Request) {
		if r.URL.Query().Has("partNumber") && once.CompareAndSwap(false, true) {
			fake.PutDirect("big.csv", []byte("theirs"), nil)
		}
	})
	f, _ := writeFile(t, 6<<20, 1)
	_, err := bs.Put(ctxT(t), "big.csv", f, 6<<20, blobstore.PutMeta{})
	if !errors.Is(err, blobstore.ErrConflict) {
		t.Fatalf("Put: %v, want ErrConflict", err)
	}
	if got := readAll(t, bs, "big.csv"); string(got) != "theirs" {
		t.Fatalf("object overwritten (%d bytes)", len(got))
	}
	aborts := fake.Count(func(r s3test.Request) bool { return r.Method == http.MethodDelete && r.Query.Has("uploadId") })
	completes := fake.Count(func(r s3test.Request) bool { return r.Method == http.MethodPost && r.Query.Has("uploadId") })
	if aborts != 1 || completes != 0 {
		t.Fatalf("aborts = %d, completes = %d; want 1, 0", aborts, completes)
	}
}

// TestMultipartCompleteRefusedByVersity: on versitygw the competing object
// appears between our last Head and CompleteMultipartUpload; the store
// refuses the complete (412) and nothing is overwritten.
func TestMultipartCompleteRefusedByVersity(t *testing.T) {
	v := s3test.StartVersity(t)
	p := s3test.Proxy(t, v.Server)
	bs := mustOpen(t, p.URL(""), s3Options(t, p.Server, blobstore.Options{PartSize: 5 << 20, MultipartThreshold: 5 << 20}))
	direct := v.Client()
	var once atomic.Bool
	p.Before(func(r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Query().Has("uploadId") && once.CompareAndSwap(false, true) {
			rawPut(t, direct, v.Bucket, "big.csv", "theirs")
		}
	})
	f, _ := writeFile(t, 6<<20, 1)
	_, err := bs.Put(ctxT(t), "big.csv", f, 6<<20, blobstore.PutMeta{})
	if !errors.Is(err, blobstore.ErrConflict) {
		t.Fatalf("Put: %v, want ErrConflict", err)
	}
	if n := p.Count(func(r s3test.Request) bool { return r.Method == http.MethodPost && r.Status == 412 }); n != 1 {
		t.Fatalf("%d completes answered 412, want 1", n)
	}
	if got := readAll(t, bs, "big.csv"); string(got) != "theirs" {
		t.Fatalf("object overwritten (%d bytes)", len(got))
	}
	ups, err := direct.ListMultipartUploads(ctxT(t), &s3.ListMultipartUploadsInput{Bucket: &v.Bucket})
	if err != nil || len(ups.Uploads) != 0 {
		t.Fatalf("multipart uploads left: %v, %v", ups, err)
	}
}

// TestStoreVerifiesPayloadHash: versitygw rejects a body that does not
// match its signed x-amz-content-sha256, so the sha256 Put signs with
// (the one it announces) is checked by the store.
func TestStoreVerifiesPayloadHash(t *testing.T) {
	v := s3test.StartVersity(t)
	wrong := sum([]byte("something else"))
	_, err := v.Client().PutObject(ctxT(t), &s3.PutObjectInput{Bucket: &v.Bucket, Key: aws.String("k"),
		Body: strings.NewReader("body")}, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("wrongHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
					middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, wrong), in)
				}), "ComputePayloadHash", middleware.Before)
		})
	})
	if err == nil {
		t.Fatal("versitygw accepted a body that does not match x-amz-content-sha256")
	}
	t.Logf("versitygw: %v", apiCode(err))

	fake := s3test.StartFake(t)
	bs := mustOpen(t, fake.URL(""), s3Options(t, fake.Server, blobstore.Options{}))
	data := []byte("a\n1\n")
	mustPut(t, bs, "k.csv", data)
	if n := fake.Count(func(r s3test.Request) bool {
		return r.Method == http.MethodPut && r.Header.Get("X-Amz-Content-Sha256") == sum(data)
	}); n != 1 {
		t.Fatalf("PutObject not signed with the file's sha256 (%d)", n)
	}
}
