package blobstore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// linkNoReplace makes tmp visible as final without replacing an existing
// final (fs.ErrExist then). It uses link(2); file systems without hard
// links get renameat2(RENAME_NOREPLACE).
func linkNoReplace(tmp, final string) error {
	err := os.Link(tmp, final)
	var le *os.LinkError
	if err == nil || !errors.As(err, &le) || !noHardLinks(le.Err) {
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		return &os.LinkError{Op: "renameat2", Old: tmp, New: final, Err: os.ErrExist}
	}
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: tmp, New: final, Err: err}
	}
	return nil
}

func noHardLinks(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) ||
		errors.Is(err, unix.EMLINK)
}
