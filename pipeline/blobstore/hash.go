package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

const copyBufSize = 256 << 10

// hashSource returns the hex sha256 of the first size bytes of src. A
// source shorter than size is a permanent error: the file is broken.
func hashSource(ctx context.Context, src io.ReaderAt, size int64) (string, error) {
	h := sha256.New()
	n, err := copyCtx(ctx, h, io.NewSectionReader(src, 0, size))
	if err != nil {
		return "", err
	}
	if n != size {
		return "", permanent(fmt.Errorf("blobstore: source holds %d bytes, want %d", n, size))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashReader returns the hex sha256 and length of everything r yields.
func hashReader(ctx context.Context, r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := copyCtx(ctx, h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// copyCtx is io.Copy with a fixed buffer that stops when ctx is done.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, copyBufSize)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}
