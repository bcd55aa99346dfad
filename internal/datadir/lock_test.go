package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	l, err := Create(dir)
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
	_, err = Create(dir)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Create(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

func TestCreateUnknownHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	os.WriteFile(filepath.Join(dir, "LOCK"), []byte("garbage"), 0o640)
	if _, err := Create(dir); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("got %v", err)
	}
}

func TestCreateNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Create(file); err == nil || !strings.Contains(err.Error(), "create data dir") {
		t.Fatalf("got %v", err)
	}
}

func TestExisting(t *testing.T) {
	dir := t.TempDir()
	if l, err := Existing(filepath.Join(dir, "missing")); l != nil || err != nil {
		t.Fatalf("missing data dir: %v, %v", l, err)
	}
	held, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Existing(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("while held: %v", err)
	}
	held.Release()
	l, err := Existing(dir)
	if err != nil || l == nil {
		t.Fatalf("after release: %v, %v", l, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	var none *Lock
	if err := none.Release(); err != nil {
		t.Fatal(err)
	}
}
