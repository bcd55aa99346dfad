package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Batch collects the writes of one processing step; Commit applies them
// atomically.
type Batch struct {
	b   *pebble.Batch
	key []byte // scratch for the keys of per-key records (the batch copies them)
}

// NewBatch starts a batch.
func (db *DB) NewBatch() *Batch { return &Batch{b: db.p.NewBatch()} }

// NewStepBatch starts a batch for a processing step: Pebble keeps its
// buffer for reuse up to 64 MiB (not the default 1 MiB), so steps do not
// allocate and regrow megabytes each time.
func (db *DB) NewStepBatch() *Batch {
	return &Batch{b: db.p.NewBatch(pebble.WithMaxRetainedSizeBytes(64 << 20))}
}

// Commit applies the batch; with sync it is durable when Commit returns.
func (b *Batch) Commit(sync bool) error {
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.b.Commit(opts); err != nil {
		return fmt.Errorf("state: commit: %w", err)
	}
	return nil
}

// Close releases the batch (committed or not).
func (b *Batch) Close() { _ = b.b.Close() }

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return b.b.Empty() }

func (b *Batch) set(k, v []byte) { _ = b.b.Set(k, v, nil) }
func (b *Batch) del(k []byte)    { _ = b.b.Delete(k, nil) }

// PutSlot records a new slot and the next free slot id.
func (b *Batch) PutSlot(p Partition, slot Slot) {
	k := append([]byte{tagSlot}, p.EventType...)
	k = append(append(k, 0), p.Partition...)
	b.set(k, appendUint32(nil, uint32(slot)))
	b.set([]byte{tagNextSlot}, appendUint32(nil, uint32(slot)+1))
}

// PutKeyState stores a key's state: the engine's encoded compaction state.
func (b *Batch) PutKeyState(slot Slot, key, enc []byte) {
	b.set(b.keyOf(tagKey, slot, key), enc)
}

// DeleteKeyState forgets a key (its retention passed).
func (b *Batch) DeleteKeyState(slot Slot, key []byte) { b.del(b.keyOf(tagKey, slot, key)) }

// PutSession files the record of a key's open session under its deadline:
// head (the engine's key state and the best event's offset) and raw (the
// best event), copied once into the batch. Due sessions are then one range
// scan in deadline order (Timers with SessionTimer), values included.
func (b *Batch) PutSession(slot Slot, deadline int64, key, head, raw []byte) {
	b.key = appendTimerKey(b.key[:0], SessionTimer, slot, deadline, key)
	op := b.b.SetDeferred(len(b.key), len(head)+len(raw))
	copy(op.Key, b.key)
	copy(op.Value[copy(op.Value, head):], raw)
	_ = op.Finish()
}

// PutTimer schedules a timer without a value (retention).
func (b *Batch) PutTimer(kind TimerKind, slot Slot, deadline int64, key []byte) {
	b.key = appendTimerKey(b.key[:0], kind, slot, deadline, key)
	b.set(b.key, nil)
}

// DeleteTimer removes a timer (a session record with SessionTimer).
func (b *Batch) DeleteTimer(kind TimerKind, slot Slot, deadline int64, key []byte) {
	b.key = appendTimerKey(b.key[:0], kind, slot, deadline, key)
	b.del(b.key)
}

// keyOf builds the key of a per-key record in the batch's scratch buffer.
func (b *Batch) keyOf(tag byte, slot Slot, key []byte) []byte {
	b.key = appendRecordKey(b.key[:0], tag, slot, key)
	return b.key
}

// PutCursor stores a slot's consumed cursor.
func (b *Batch) PutCursor(slot Slot, c Cursor) { b.set(slotKey(tagCursor, slot), encodeCursor(c)) }

// PutRing stores one recent durable batch.
func (b *Batch) PutRing(slot Slot, r RingEntry) {
	b.set(appendUint64(slotKey(tagRing, slot), r.Seq), encodeRing(r))
}

// DeleteRingBefore drops the ring entries with seq < seq.
func (b *Batch) DeleteRingBefore(slot Slot, seq uint64) {
	_ = b.b.DeleteRange(slotKey(tagRing, slot), appendUint64(slotKey(tagRing, slot), seq), nil)
}

// PutCounters stores an event type's counters.
func (b *Batch) PutCounters(eventType string, c Counters) {
	b.set(append([]byte{tagCounters}, eventType...), encodeCounters(c))
}

// PutFingerprint stores the fingerprint of an event type's config.
func (b *Batch) PutFingerprint(eventType, fp string) {
	b.set(append([]byte{tagFingerprint}, eventType...), []byte(fp))
}

// PutNextSeq stores the next sequence number of a file stream.
func (b *Batch) PutNextSeq(id FileID, seq uint64) {
	b.set(append([]byte{tagNextSeq}, id.key()...), binary.AppendUvarint(nil, seq))
}

// PutFile stores an open staging file's record.
func (b *Batch) PutFile(f *File) { b.set(append([]byte{tagFile}, f.ID.key()...), encodeFile(f)) }

// DeleteFile removes an open staging file's record (it was sealed).
func (b *Batch) DeleteFile(id FileID) { b.del(append([]byte{tagFile}, id.key()...)) }

// PutOutbox stores a sealed file for delivery.
func (b *Batch) PutOutbox(o *Outbox) { b.set(outboxKey(o.ID, o.Seq), encodeOutbox(o)) }

// DeleteOutbox removes a delivered file's entry.
func (b *Batch) DeleteOutbox(id FileID, seq uint64) { b.del(outboxKey(id, seq)) }
