// Package fsync makes directory entries durable: after a file is created,
// renamed, linked or removed, its directory must be fsynced too, or a crash
// can forget the change.
package fsync

import (
	"fmt"
	"os"
)

// Dir fsyncs a directory.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
