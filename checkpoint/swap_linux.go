//go:build linux

package checkpoint

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// exchange makes staged the data dir and moves the old one to aside.
func exchange(staged, dataDir, aside string) error {
	err := unix.Renameat2(unix.AT_FDCWD, staged, unix.AT_FDCWD, dataDir, unix.RENAME_EXCHANGE)
	if err == nil {
		// staged now holds the old data dir.
		if err := os.Rename(staged, aside); err != nil {
			return fmt.Errorf("checkpoint: move the old data dir aside: %w", err)
		}
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("checkpoint: swap %s and %s: %w", staged, dataDir, err)
	}
	return renameTwice(staged, dataDir, aside)
}
