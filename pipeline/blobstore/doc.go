// Package blobstore stores sealed files in their final place: an S3 bucket
// (s3://bucket/prefix, aws-sdk-go-v2) or a local/NFS directory
// (file:///abs/dir). Both targets share one contract, the Store:
//
//   - a delivered key is never overwritten: S3 uploads carry
//     If-None-Match: * (PutObject and CompleteMultipartUpload), the file
//     target links the finished temp file into place without replacing;
//   - a key that already exists with the same bytes (same size and sha256)
//     counts as delivered (Stored.AlreadyExisted), with other bytes the
//     Put fails with ErrConflict;
//   - files stream from disk (io.ReaderAt; multipart parts are
//     io.SectionReaders), so memory does not grow with file size;
//   - every stored object carries its sha256 (S3: x-amz-meta-sha256);
//   - transient failures (5xx, throttling, network) are retried inside Put
//     with capped exponential backoff and jitter, bounded by the context;
//     what is left is classified: errors.Is(err, ErrPermanent) means a
//     retry will not help, anything else is worth retrying later.
//
// Bounded upload concurrency is the caller's: Put is safe to call from
// several goroutines.
package blobstore
