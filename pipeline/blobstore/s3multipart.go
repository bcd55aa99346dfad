package blobstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// putMultipart uploads src in parts read straight from disk (one
// io.SectionReader per part, at most PartConcurrency in flight), then
// completes with If-None-Match: *. Any failure aborts the upload.
func (s *s3Store) putMultipart(ctx context.Context, st Stored, src io.ReaderAt, meta PutMeta) error {
	in := &s3.CreateMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(s.objectKey(st.Key)),
		Metadata: metadata(meta, st.SHA256),
	}
	if meta.ContentType != "" {
		in.ContentType = aws.String(meta.ContentType)
	}
	in.ServerSideEncryption, in.SSEKMSKeyId = s.sse()
	out, err := s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return s3Error("create multipart upload", st.Key, err)
	}
	uploadID := aws.ToString(out.UploadId)
	if err = s.uploadAndComplete(ctx, st, src, uploadID); err != nil {
		s.abort(ctx, st.Key, uploadID)
	}
	return err
}

func (s *s3Store) uploadAndComplete(ctx context.Context, st Stored, src io.ReaderAt, uploadID string) error {
	parts, err := s.uploadParts(ctx, st, src, uploadID)
	if err != nil {
		return err
	}
	// Stores that ignore If-None-Match on complete (gofakes3) would replace
	// an object that appeared meanwhile: look first. On stores that honour
	// it (AWS, versitygw) this is only a cheap early exit.
	if _, err := s.Head(ctx, st.Key); err == nil {
		return errExists
	} else if !errors.Is(err, ErrNotFound) && !headForbidden(err) {
		return err
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(s.objectKey(st.Key)),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	switch {
	case err == nil:
		return nil
	case isPreconditionFailed(err), isNoSuchUpload(err):
		// NoSuchUpload: a retried complete whose first attempt succeeded.
		return errExists
	}
	return s3Error("complete multipart upload", st.Key, err)
}

func (s *s3Store) uploadParts(ctx context.Context, st Stored, src io.ReaderAt, uploadID string) ([]types.CompletedPart, error) {
	partSize := s.partSize(st.Size)
	n := int((st.Size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.PartConcurrency)
	for i := 0; i < n && gctx.Err() == nil; i++ {
		off := int64(i) * partSize
		length := min(partSize, st.Size-off)
		num := int32(i + 1)
		g.Go(func() error {
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:        aws.String(s.bucket),
				Key:           aws.String(s.objectKey(st.Key)),
				UploadId:      aws.String(uploadID),
				PartNumber:    aws.Int32(num),
				Body:          io.NewSectionReader(src, off, length),
				ContentLength: aws.Int64(length),
			})
			if err != nil {
				return s3Error("upload part", st.Key, err)
			}
			parts[num-1] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return parts, nil
}

// partSize is PartSize, grown so that size needs at most 10 000 parts.
func (s *s3Store) partSize(size int64) int64 {
	p := s.opts.PartSize
	if need := (size + maxParts - 1) / maxParts; need > p {
		p = need
	}
	return p
}

// abort runs even when ctx is cancelled; a failure only leaves parts
// behind for the bucket's AbortIncompleteMultipartUpload lifecycle rule.
func (s *s3Store) abort(ctx context.Context, key, uploadID string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(s.objectKey(key)),
		UploadId: aws.String(uploadID),
	})
	if err != nil && !isNoSuchUpload(err) {
		s.log.Warn().Err(err).Str("key", key).Msg("multipart upload not aborted; its parts stay until a lifecycle rule removes them")
	}
}
