package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeFileSync writes data to a new file and fsyncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	return nil
}

// linkOrCopy hard-links src to dst, copying when links are not possible
// (another file system). It returns os.ErrNotExist when src is gone.
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return err
	}
	_, _, err = copyFile(src, dst, -1)
	return err
}

// copyFile copies the first n bytes of src (all when n < 0) to a new file
// dst, fsyncs it, and returns the bytes written and their sha256. A source
// shorter than n is an error: the caller recorded more than exists.
func copyFile(src, dst string, n int64) (int64, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = in.Close() }()
	var r io.Reader = in
	if n >= 0 {
		r = io.LimitReader(in, n)
	}
	written, sum, err := writeHashed(dst, r)
	if err == nil && n >= 0 && written != n {
		_ = os.Remove(dst)
		err = fmt.Errorf("%w: %s has %d bytes, %d expected", ErrInvalid, src, written, n)
	}
	if err != nil {
		return 0, "", fmt.Errorf("checkpoint: copy %s: %w", filepath.Base(src), err)
	}
	return written, sum, nil
}

// writeHashed writes everything r yields to a new file dst, fsyncs it and
// returns its size and sha256; on an error dst is removed.
func writeHashed(dst string, r io.Reader) (int64, string, error) {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile returns a file's size and sha256.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("checkpoint: read %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
