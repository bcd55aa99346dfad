package state

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LockedError says another process holds a lock file (Flock).
type LockedError struct {
	Path   string
	Holder string // "pid N" when the file names it, else "another process"
}

func (e *LockedError) Error() string { return e.Path + " is locked by " + e.Holder }

// Flock opens path (creating it, mode 0640, when create is set) and takes
// an exclusive flock without waiting. The data dir's LOCK file is taken
// this way by `materializer run` for its whole life and by a restore, so
// the two never use a data dir at once; the kernel drops the lock when the
// process dies. Errors: the open error as is (os.ErrNotExist without
// create), *LockedError when the lock is held.
func Flock(path string, create bool) (*os.File, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o640)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &LockedError{Path: path, Holder: lockHolder(path)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// lockHolder reads the PID the holder wrote into the lock file.
func lockHolder(path string) string {
	data, err := os.ReadFile(path)
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return "another process"
}
