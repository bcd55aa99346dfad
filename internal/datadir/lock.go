package datadir

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrInUse means another process holds a data dir's lock. Its message names
// the lock file and the holder's PID when the file has it.
var ErrInUse = errors.New("data dir in use")

// Lock is an exclusive flock on a data dir's LOCK file. `materializer run`
// holds it for its whole life and a restore while it swaps directories, so
// the two never use a data dir at once. The kernel drops it when the
// process dies (also on kill -9); the file itself stays.
type Lock struct {
	path string
	f    *os.File
}

// Create creates dir (mode 0750) if needed, takes its lock and writes the
// PID into the lock file (what `materializer run` does).
func Create(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	l, err := lock(LockFile(dir), true)
	if err != nil {
		return nil, err
	}
	if err := l.writePID(); err != nil {
		l.f.Close()
		return nil, fmt.Errorf("write %s: %w", l.path, err)
	}
	return l, nil
}

// Existing takes the lock of a data dir that may not exist: without a
// LOCK file there is nothing to lock, and it returns (nil, nil). Release
// of a nil Lock is a no-op.
func Existing(dir string) (*Lock, error) {
	l, err := lock(LockFile(dir), false)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return l, err
}

// lock opens path (creating it, mode 0640, when create is set) and takes an
// exclusive flock without waiting; ErrInUse while another process holds it.
func lock(path string, create bool) (*Lock, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o640)
	if errors.Is(err, os.ErrNotExist) && !create {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by %s; only one materializer may use a data dir", ErrInUse, path, holder(path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{path: path, f: f}, nil
}

// holder reads the PID the holder wrote into the lock file.
func holder(path string) string {
	data, err := os.ReadFile(path)
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return "another process"
}

func (l *Lock) writePID() error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	if _, err := l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return l.f.Sync()
}

// Release drops the lock. The file is left in place: removing it would let
// a third process lock a new file while a second still waits on the old one.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	if err := unix.Flock(int(l.f.Fd()), unix.LOCK_UN); err != nil {
		l.f.Close()
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return l.f.Close()
}
