package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Session1 turns one open session of format 1 into format 2: given the
// key's stored state and its best event's offset, it returns the key's new
// state and the head of its session record (the best event follows the
// head). ok false: the timer was stale (the session had closed); it is
// dropped.
type Session1 func(deadline int64, state []byte, offset string) (newState, head []byte, ok bool, err error)

// UpgradeFrom1 turns format-1 state into format 2. Format 1 kept an open
// session as three records — its key state ('M'), its best event ('B') and
// a session timer ('T' slot deadline key, no value); format 2 files one
// session record under the deadline (PutSession), so that closing due
// sessions is a range scan instead of two point reads per session. It works
// in synced batches of a few thousand sessions and is idempotent: a crash
// part way leaves the rest for the next start. The format version becomes 2
// last. A no-op on format 2.
func (db *DB) UpgradeFrom1(session Session1) error {
	if db.format != 1 {
		return nil
	}
	for {
		n, err := db.upgradeSome(session, 4096)
		if err != nil {
			return fmt.Errorf("state: upgrading format 1: %w", err)
		}
		if n == 0 {
			break
		}
	}
	b := db.p.NewBatch()
	defer func() { _ = b.Close() }()
	// Best events without a timer (none should exist) go with format 1.
	_ = b.DeleteRange([]byte{tagBestV1}, []byte{tagBestV1 + 1}, nil)
	_ = b.Set([]byte{tagVersion}, binary.AppendUvarint(nil, FormatVersion), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	db.format = FormatVersion
	return nil
}

// upgradeSome upgrades up to max format-1 sessions in one synced batch.
func (db *DB) upgradeSome(session Session1, max int) (int, error) {
	b := db.NewBatch()
	defer b.Close()
	n := 0
	err := db.scan([]byte{tagSessionV1}, func(k, _ []byte) error {
		if n == max {
			return errStopScan
		}
		n++
		slot := Slot(binary.BigEndian.Uint32(k[1:5]))
		deadline := int64(binary.BigEndian.Uint64(k[5:13]) ^ (1 << 63))
		key := append([]byte(nil), k[13:]...)
		b.b.Delete(k, nil)
		best := appendRecordKey(nil, tagBestV1, slot, key)
		bv, err := db.get(best)
		if err != nil || bv == nil {
			return err // a stale timer: its session closed
		}
		st, err := db.get(keyStateKey(slot, key))
		if err != nil || st == nil {
			return err
		}
		d := dec{b: bv}
		offset, raw := d.str(), d.bytes()
		if d.err != nil {
			return fmt.Errorf("best event of slot %d: %w", slot, d.err)
		}
		newState, head, ok, err := session(deadline, st, offset)
		if err != nil || !ok {
			return err
		}
		b.PutSession(slot, deadline, key, head, raw)
		b.PutKeyState(slot, key, newState)
		b.b.Delete(best, nil)
		return nil
	})
	if err != nil && err != errStopScan {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	return n, b.Commit(true)
}
