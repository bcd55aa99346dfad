package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"materializer/state"
)

// errDataDirInUse means another process holds the data dir's lock.
var errDataDirInUse = errors.New("daemon: data dir in use")

// dataDirLock is an exclusive flock on DATA_DIR/LOCK, held for the life of
// `materializer run`. The kernel drops it when the process dies (also on
// kill -9); the file itself stays and holds the PID of the last holder.
type dataDirLock struct {
	path string
	f    *os.File
}

// lockDataDir creates dir (mode 0750) if needed and takes its lock, or
// fails with errDataDirInUse naming the lock file and the holder's PID.
func lockDataDir(dir string) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, "LOCK")
	f, err := state.Flock(path, true)
	var locked *state.LockedError
	if errors.As(err, &locked) {
		return nil, fmt.Errorf("%w: %s is locked by %s; only one materializer may use a data dir",
			errDataDirInUse, path, locked.Holder)
	}
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &dataDirLock{path: path, f: f}, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

// Release drops the lock. The file is left in place: removing it would let
// a third process lock a new file while a second still waits on the old one.
func (l *dataDirLock) Release() error {
	if err := unix.Flock(int(l.f.Fd()), unix.LOCK_UN); err != nil {
		l.f.Close()
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return l.f.Close()
}
