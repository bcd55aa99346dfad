package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLockDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	l, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&^0o750 != 0 {
		t.Fatalf("data dir: %v, mode %v", err, fi.Mode())
	}
	data, _ := os.ReadFile(filepath.Join(dir, "LOCK"))
	if strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("LOCK holds %q", data)
	}
	// flock conflicts between open files even within one process.
	_, err = lockDataDir(dir)
	if !errors.Is(err, errDataDirInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

func TestLockDataDirUnknownHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	os.WriteFile(filepath.Join(dir, "LOCK"), []byte("garbage"), 0o640)
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("got %v", err)
	}
}

func TestLockDataDirNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := lockDataDir(file); err == nil || !strings.Contains(err.Error(), "create data dir") {
		t.Fatalf("got %v", err)
	}
}
