package state

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

// FormatVersion is the layout version this binary writes. Bump it whenever a
// key or value encoding changes. Format 1 (best events and session timers
// as separate records) is read and upgraded (UpgradeFrom1).
const FormatVersion = 2

// Errors of the state package.
var (
	ErrFormat = errors.New("state: incompatible format")
	ErrClosed = errors.New("state: closed")
)

const (
	tagVersion     = 'V'
	tagWriter      = 'W'
	tagFingerprint = 'E'
	tagSlot        = 'I'
	tagNextSlot    = 'i'
	tagKey         = 'M'
	tagSession     = 'S'
	tagExpiry      = 'X'
	tagBestV1      = 'B' // format 1: best event of an open session
	tagSessionV1   = 'T' // format 1: session timer (no value)
	tagCursor      = 'C'
	tagRing        = 'R'
	tagCounters    = 'N'
	tagNextSeq     = 'Q'
	tagFile        = 'G'
	tagOutbox      = 'O'
)

// TimerKind tells session timers from retention timers.
type TimerKind byte

// Timer kinds. A session timer is the record of an open session itself
// (PutSession), filed under its deadline; a retention timer has no value.
const (
	SessionTimer TimerKind = tagSession
	ExpiryTimer  TimerKind = tagExpiry
)

// Options tune the Pebble instance.
type Options struct {
	Logger       zerolog.Logger
	CacheSize    int64  // block cache for blocks, besides the memtables; default 64 MiB
	MemTableSize uint64 // default 32 MiB
	// MemTables is how many memtables may be in memory (one written, the
	// others flushing) before writes stop; default 3. Their memory is
	// reserved in the block cache, on top of CacheSize.
	MemTables int
	FS        vfs.FS // default the OS file system; vfs.NewMem() in tests
}

// DB is the state store of one data dir.
type DB struct {
	p      *pebble.DB
	writer string
	format uint64 // the stored format version (1 until upgraded)
}

// Open opens (or creates) the state in dir. It refuses state written in
// another format version, naming both versions.
func Open(dir string, o Options) (*DB, error) {
	if o.MemTableSize == 0 {
		o.MemTableSize = 32 << 20
	}
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTables < 2 {
		o.MemTables = 3
	}
	// Pebble reserves the memory of its memtables in the block cache: size
	// the cache on top of them, or blocks get no room at all.
	o.CacheSize += int64(o.MemTables) * int64(o.MemTableSize)
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:                          o.FS,
		Cache:                       cache,
		MemTableSize:                o.MemTableSize,
		MemTableStopWritesThreshold: o.MemTables,
		FormatMajorVersion:          pebble.FormatNewest,
		// Uniformly spread key updates make every L0 table overlap all of
		// Lbase: compacting L0 later, with more tables at once, rewrites Lbase
		// less often. Measured with BenchmarkStep (1M keys, 10M events of
		// 500 B): 16 instead of 4 gave 16% more events/s and 42% more events
		// per CPU-second; lookups stay cheap through the filters. With the
		// session log (closing sessions reads no key state): 32 instead of
		// 16 gave 7% more events/s at the same CPU (1M keys, 5M events of
		// 1 KB, back to back).
		// Table handles: with a staging file cache and one connection per
		// Nakadi stream, a daemon with a thousand event types stays under
		// 2,048 descriptors.
		MaxOpenFiles:          500,
		L0CompactionThreshold: 32,
		L0StopWritesThreshold: 1000,
		Logger:                pebbleLogger{o.Logger.With().Str("component", "pebble").Logger()},
	}
	// Point lookups of key states dominate: bloom filters on every level
	// skip tables without the key, small blocks keep a miss cheap.
	popts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	popts.Levels[0].BlockSize = 4 << 10
	for i := 1; i < len(popts.Levels); i++ {
		popts.Levels[i] = popts.Levels[0]
	}
	// Values are small (key states, session records that name where their
	// best event is in the engine's session log, cursors, file records):
	// no value separation, and blocks are not compressed — the CPU that
	// compression took in flushes and compactions is worth more than the
	// disk it saved.
	popts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	p, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	db := &DB{p: p}
	if err := db.init(); err != nil {
		_ = p.Close()
		return nil, err
	}
	return db, nil
}

// checkVersion decodes a stored format version; ok when this binary reads it.
func checkVersion(v []byte) (got uint64, ok bool) {
	got, n := binary.Uvarint(v)
	return got, n > 0 && (got == 1 || got == FormatVersion)
}

// Format is the stored format version: FormatVersion, or 1 until
// UpgradeFrom1 ran.
func (db *DB) Format() uint64 { return db.format }

// init checks the format version and loads (or creates) the writer id.
func (db *DB) init() error {
	v, err := db.get([]byte{tagVersion})
	if err != nil {
		return err
	}
	b := db.p.NewBatch()
	defer func() { _ = b.Close() }()
	if v == nil {
		if err := db.checkEmpty(); err != nil {
			return err
		}
		_ = b.Set([]byte{tagVersion}, binary.AppendUvarint(nil, FormatVersion), nil)
		db.format = FormatVersion
	} else if got, ok := checkVersion(v); !ok {
		return fmt.Errorf("%w: the data dir holds state format %d, this binary reads formats 1 and %d", ErrFormat, got, FormatVersion)
	} else {
		db.format = got
	}
	w, err := db.get([]byte{tagWriter})
	if err != nil {
		return err
	}
	if w == nil {
		db.writer = NewWriterID()
		_ = b.Set([]byte{tagWriter}, []byte(db.writer), nil)
	} else {
		db.writer = string(w)
	}
	if b.Empty() {
		return nil
	}
	return b.Commit(pebble.Sync)
}

func (db *DB) checkEmpty() error {
	it, err := db.p.NewIter(nil)
	if err != nil {
		return err
	}
	defer func() { _ = it.Close() }()
	if it.First() {
		return fmt.Errorf("%w: the data dir holds state without a format version (key %q)", ErrFormat, it.Key())
	}
	return nil
}

// NewWriterID makes a fresh random writer id (12 hex digits).
func NewWriterID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// WriterID is the stable id of this data dir's writer (docs/files-and-notices.md).
func (db *DB) WriterID() string { return db.writer }

// SetWriterID replaces the writer id; a restored checkpoint takes a new one
// so its files never collide with those of the daemon it came from.
func (db *DB) SetWriterID(id string) error {
	if err := db.p.Set([]byte{tagWriter}, []byte(id), pebble.Sync); err != nil {
		return err
	}
	db.writer = id
	return nil
}

// Close closes the database.
func (db *DB) Close() error { return db.p.Close() }

// Checkpoint writes a consistent copy of the database to dir, which must not
// exist. Callers that need it consistent with files pause writers first.
func (db *DB) Checkpoint(dir string) error {
	return db.p.Checkpoint(dir, pebble.WithFlushedWAL())
}

// Metrics exposes Pebble's metrics (for /metrics and status).
func (db *DB) Metrics() *pebble.Metrics { return db.p.Metrics() }

// get returns a copy of the value, or nil when the key is absent.
func (db *DB) get(key []byte) ([]byte, error) {
	v, closer, err := db.p.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: get: %w", err)
	}
	out := append([]byte{}, v...)
	_ = closer.Close()
	return out, nil
}

// getInto calls fn with the value while it is valid; found is false when the
// key is absent.
func (db *DB) getInto(key []byte, fn func([]byte) error) (found bool, err error) {
	v, closer, err := db.p.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: get: %w", err)
	}
	defer func() { _ = closer.Close() }()
	return true, fn(v)
}

// scan calls fn for every key with the prefix, in order.
func (db *DB) scan(prefix []byte, fn func(k, v []byte) error) error {
	return db.scanRange(prefix, prefixEnd(prefix), fn)
}

func (db *DB) scanRange(lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := db.p.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// prefixEnd is the smallest key greater than every key with the prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte{}, prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func slotKey(tag byte, slot Slot) []byte { return appendUint32([]byte{tag}, uint32(slot)) }

func keyStateKey(slot Slot, key []byte) []byte { return appendRecordKey(nil, tagKey, slot, key) }

// appendRecordKey appends the key of a per-key record: tag, slot, key.
func appendRecordKey(dst []byte, tag byte, slot Slot, key []byte) []byte {
	return append(appendUint32(append(dst, tag), uint32(slot)), key...)
}

func timerKey(kind TimerKind, slot Slot, deadline int64, key []byte) []byte {
	return appendTimerKey(nil, kind, slot, deadline, key)
}

func appendTimerKey(dst []byte, kind TimerKind, slot Slot, deadline int64, key []byte) []byte {
	dst = appendUint64(appendUint32(append(dst, byte(kind)), uint32(slot)), uint64(deadline)^(1<<63))
	return append(dst, key...)
}

// KeyState calls decode with the stored state of key (the engine's encoded
// compaction state; valid only during the call); found is false when the
// key has none.
func (db *DB) KeyState(slot Slot, key []byte, decode func(v []byte) error) (found bool, err error) {
	return db.getInto(keyStateKey(slot, key), decode)
}

// Timers calls fn for the slot's timers of one kind with deadline <= until,
// oldest first, until fn returns false or an error.
// A session timer's value is its session's record (PutSession); key and
// value are valid only during the call. The scan starts at deadline from:
// a caller that knows every timer before it is gone passes it, so the scan
// does not walk over the deletions of timers handled before (they stay in
// Pebble as tombstones until compacted).
func (db *DB) Timers(kind TimerKind, slot Slot, from, until int64, fn func(deadline int64, key, value []byte) (bool, error)) error {
	lower := timerKey(kind, slot, from, nil)
	upper := prefixEnd(slotKey(byte(kind), slot))
	if until < math.MaxInt64 {
		upper = timerKey(kind, slot, until+1, nil) // every key at exactly `until` too
	}
	err := db.scanRange(lower, upper, func(k, v []byte) error {
		deadline := int64(binary.BigEndian.Uint64(k[5:13]) ^ (1 << 63))
		more, err := fn(deadline, k[13:], v)
		if err != nil {
			return err
		}
		if !more {
			return errStopScan
		}
		return nil
	})
	if errors.Is(err, errStopScan) {
		return nil
	}
	return err
}

// errStopScan ends a scan early from its callback.
var errStopScan = errors.New("state: stop scan")

// NextTimer returns the earliest deadline of the slot's timers of one kind,
// at or after from.
func (db *DB) NextTimer(kind TimerKind, slot Slot, from int64) (deadline int64, ok bool, err error) {
	err = db.Timers(kind, slot, from, math.MaxInt64, func(d int64, _, _ []byte) (bool, error) {
		deadline, ok = d, true
		return false, nil
	})
	return deadline, ok, err
}

// Slots returns every allocated slot and the next free id.
func (db *DB) Slots() (map[Partition]Slot, Slot, error) {
	slots := map[Partition]Slot{}
	err := db.scan([]byte{tagSlot}, func(k, v []byte) error {
		et, p, ok := cutZero(k[1:])
		if !ok || len(v) != 4 {
			return ErrCorrupt
		}
		slots[Partition{EventType: et, Partition: p}] = Slot(binary.BigEndian.Uint32(v))
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	next := Slot(1)
	if v, err := db.get([]byte{tagNextSlot}); err != nil {
		return nil, 0, err
	} else if len(v) == 4 {
		next = Slot(binary.BigEndian.Uint32(v))
	}
	return slots, next, nil
}

func cutZero(b []byte) (string, string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), string(b[i+1:]), true
		}
	}
	return "", "", false
}

// Cursor returns the slot's consumed cursor (zero when none).
func (db *DB) Cursor(slot Slot) (Cursor, error) {
	v, err := db.get(slotKey(tagCursor, slot))
	if err != nil || v == nil {
		return Cursor{}, err
	}
	return decodeCursor(v)
}

// Ring returns the slot's recent durable batches, oldest first.
func (db *DB) Ring(slot Slot) ([]RingEntry, error) {
	var out []RingEntry
	err := db.scan(slotKey(tagRing, slot), func(k, v []byte) error {
		r, err := decodeRing(binary.BigEndian.Uint64(k[5:]), v)
		out = append(out, r)
		return err
	})
	return out, err
}

// Counters returns an event type's counters.
func (db *DB) Counters(eventType string) (Counters, error) {
	v, err := db.get(append([]byte{tagCounters}, eventType...))
	if err != nil || v == nil {
		return Counters{}, err
	}
	return decodeCounters(v)
}

// Fingerprint returns the stored fingerprint of an event type ("" if none).
func (db *DB) Fingerprint(eventType string) (string, error) {
	v, err := db.get(append([]byte{tagFingerprint}, eventType...))
	return string(v), err
}

// NextSeq returns the next sequence number of a file stream (1 when new).
func (db *DB) NextSeq(id FileID) (uint64, error) {
	v, err := db.get(append([]byte{tagNextSeq}, id.key()...))
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 1, nil
	}
	seq, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, ErrCorrupt
	}
	return seq, nil
}

// Files returns every open staging file.
func (db *DB) Files() ([]File, error) {
	var out []File
	err := db.scan([]byte{tagFile}, func(_, v []byte) error {
		f, err := decodeFile(v)
		out = append(out, f)
		return err
	})
	return out, err
}

// Outbox returns every sealed file not yet delivered, ordered by file stream
// and sequence number.
func (db *DB) Outbox() ([]Outbox, error) {
	var out []Outbox
	err := db.scan([]byte{tagOutbox}, func(_, v []byte) error {
		o, err := decodeOutbox(v)
		out = append(out, o)
		return err
	})
	return out, err
}

func outboxKey(id FileID, seq uint64) []byte {
	k := append([]byte{tagOutbox}, id.key()...)
	k = append(k, 0)
	return appendUint64(k, seq)
}

// pebbleLogger routes Pebble's logs to zerolog. Fatalf panics, as Pebble's
// own default does: Pebble calls it only for broken invariants.
type pebbleLogger struct{ l zerolog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug().Msgf(format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error().Msgf(format, args...) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error().Msgf(format, args...)
	panic(fmt.Sprintf(format, args...))
}

// Keys calls fn for every key of the slot with its stored state, in key
// order (for inspection and tests); both are valid only during the call.
func (db *DB) Keys(slot Slot, fn func(key, state []byte) error) error {
	return db.scan(slotKey(tagKey, slot), func(k, v []byte) error { return fn(k[5:], v) })
}

// KeyStates looks up many keys of one slot with one iterator: keys must be
// sorted and distinct. For each key found, decode(i, v) gets its stored
// state (valid only during the call).
// Sorted seeks move forward through each level instead of starting over,
// which makes a step's lookups several times cheaper than one Get each.
func (db *DB) KeyStates(slot Slot, keys [][]byte, decode func(i int, v []byte) error) error {
	if len(keys) == 0 {
		return nil
	}
	prefix := slotKey(tagKey, slot)
	it, err := db.p.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	buf := make([]byte, 0, 64)
	for i, k := range keys {
		buf = append(append(buf[:0], prefix...), k...)
		if !it.SeekPrefixGE(buf) || !bytes.Equal(it.Key(), buf) {
			continue
		}
		v, err := it.ValueAndErr()
		if err == nil {
			err = decode(i, v)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}
