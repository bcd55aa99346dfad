package state

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
)

// Flush writes the memtable to an SST and waits for it. Called before a
// checkpoint (outside the writer's pause) so that the WAL the checkpoint
// copies holds only the writes since, and the pause stays short.
func (db *DB) Flush() error {
	if err := db.p.Flush(); err != nil {
		return fmt.Errorf("state: flush: %w", err)
	}
	return nil
}

// OpenReadOnly opens the state in dir (a checkpoint) for reading only: no
// file in dir is written or removed, so a checkpoint can be inspected and
// still be copied as it was taken. Only the format version is checked.
func OpenReadOnly(dir string) (*DB, error) {
	p, err := pebble.Open(dir, &pebble.Options{
		ReadOnly: true,
		Logger:   pebbleLogger{zerolog.Nop()},
	})
	if err != nil {
		return nil, fmt.Errorf("state: open %s read-only: %w", dir, err)
	}
	db := &DB{p: p}
	v, err := db.get([]byte{tagVersion})
	if err == nil {
		if got, ok := checkVersion(v); !ok {
			err = fmt.Errorf("%w: %s holds state format %d, this binary reads format %d", ErrFormat, dir, got, FormatVersion)
		}
	}
	var w []byte
	if err == nil {
		w, err = db.get([]byte{tagWriter})
	}
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	db.writer = string(w)
	return db, nil
}
