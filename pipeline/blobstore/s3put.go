package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// Put hashes src, checks whether the key is already taken (cheap, and it
// skips re-uploading a big file after a crash), then uploads with
// If-None-Match: * in one request or as a multipart upload.
func (s *s3Store) Put(ctx context.Context, key string, src io.ReaderAt, size int64, meta PutMeta) (Stored, error) {
	start := s.opts.Now()
	st, err := s.put(ctx, key, src, size, meta)
	s.metrics.observePut("s3", st, err, s.opts.Now().Sub(start))
	if err != nil {
		return Stored{}, err
	}
	return st, nil
}

func (s *s3Store) put(ctx context.Context, key string, src io.ReaderAt, size int64, meta PutMeta) (Stored, error) {
	if err := checkKey(key); err != nil {
		return Stored{}, err
	}
	sum, err := hashSource(ctx, src, size)
	if err != nil {
		return Stored{}, fmt.Errorf("blobstore: put %q: %w", key, err)
	}
	st := Stored{Key: key, URL: s.URL(key), Size: size, SHA256: sum}
	if found, err := s.matchExisting(ctx, &st); found || (err != nil && !headForbidden(err)) {
		return st, err
	}
	if size >= s.opts.MultipartThreshold {
		err = s.putMultipart(ctx, st, src, meta)
	} else {
		err = s.putSingle(ctx, st, src, meta)
	}
	if errors.Is(err, errExists) {
		found, err := s.matchExisting(ctx, &st)
		if err == nil && !found {
			err = fmt.Errorf("blobstore: put %q: the store refused the write as existing, but the key is absent", key)
		}
		return st, err
	}
	return st, err
}

// headForbidden: AWS answers a HEAD of a missing key with 403 when the
// role may not list the bucket. The pre-checks are only shortcuts (the
// conditional write protects the key), so Put goes on without them.
func headForbidden(err error) bool { return httpStatus(err) == 403 }

func (s *s3Store) putSingle(ctx context.Context, st Stored, src io.ReaderAt, meta PutMeta) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.objectKey(st.Key)),
		Body:          io.NewSectionReader(src, 0, st.Size),
		ContentLength: aws.Int64(st.Size),
		IfNoneMatch:   aws.String("*"),
		Metadata:      metadata(meta, st.SHA256),
	}
	if meta.ContentType != "" {
		in.ContentType = aws.String(meta.ContentType)
	}
	in.ServerSideEncryption, in.SSEKMSKeyId = s.sse()
	_, err := s.client.PutObject(ctx, in, s.signWithHash(st.SHA256))
	if isPreconditionFailed(err) {
		return errExists
	}
	if err != nil {
		return s3Error("put object", st.Key, err)
	}
	return nil
}

// matchExisting heads the key: absent → false; present with our size and
// sha256 → true and st.AlreadyExisted; anything else → ErrConflict. An
// object without sha256 metadata is downloaded and hashed.
func (s *s3Store) matchExisting(ctx context.Context, st *Stored) (bool, error) {
	info, err := s.Head(ctx, st.Key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if info.Size != st.Size {
		return false, conflict(st.Key, fmt.Sprintf("existing object has %d bytes, ours %d", info.Size, st.Size))
	}
	theirs := info.SHA256
	if theirs == "" {
		if theirs, err = s.hashObject(ctx, st.Key); err != nil {
			return false, err
		}
	}
	if theirs != st.SHA256 {
		return false, conflict(st.Key, "existing object has sha256 "+theirs+", ours "+st.SHA256)
	}
	st.AlreadyExisted = true
	return true, nil
}

func (s *s3Store) hashObject(ctx context.Context, key string) (string, error) {
	body, err := s.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer body.Close()
	sum, _, err := hashReader(ctx, body)
	if err != nil {
		return "", fmt.Errorf("blobstore: s3 get %q: %w", key, err)
	}
	return sum, nil
}

func (s *s3Store) sse() (types.ServerSideEncryption, *string) {
	switch s.opts.SSE {
	case SSEAES256:
		return types.ServerSideEncryptionAes256, nil
	case SSEKMS:
		if s.opts.KMSKeyID == "" {
			return types.ServerSideEncryptionAwsKms, nil
		}
		return types.ServerSideEncryptionAwsKms, aws.String(s.opts.KMSKeyID)
	}
	return "", nil
}

// signWithHash hands our sha256 of the body to the SigV4 signer. Over
// plain HTTP the SDK would otherwise read and hash the body a second time;
// the store checks the body against it, so the sha256 we announce is
// verified end to end. Over HTTPS the SDK sends UNSIGNED-PAYLOAD (with a
// CRC trailer on AWS) and hashes nothing, so it is left alone.
func (s *s3Store) signWithHash(sum string) func(*s3.Options) {
	return func(o *s3.Options) {
		if !strings.HasPrefix(s.opts.Endpoint, "http://") {
			return
		}
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("MaterializerPayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
					middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, sum), in)
				}), "ComputePayloadHash", middleware.Before)
		})
	}
}

func metadata(meta PutMeta, sum string) map[string]string {
	m := make(map[string]string, len(meta.Metadata)+1)
	for k, v := range meta.Metadata {
		m[k] = v
	}
	m[MetaSHA256] = sum
	return m
}
