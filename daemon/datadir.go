package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by %s; only one materializer may use a data dir",
				errDataDirInUse, path, lockHolder(path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
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

// lockHolder describes who holds the lock: "pid N" when the file says so.
func lockHolder(path string) string {
	data, err := os.ReadFile(path)
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return "another process"
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
