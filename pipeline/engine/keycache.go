package engine

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"materializer/pipeline/compact"
)

// keyCache keeps the committed, encoded state of recently used keys, so a
// step whose keys were seen lately needs no Pebble lookup — in update
// streams most events are for keys updated shortly before. It is updated
// only after a step commits and cleared by recovery, so it never holds state
// that is not durable.
//
// Its memory is fixed at creation (it does not grow with the number of keys
// in state) and lies outside the Go heap (newKeyCache):
//
//   - a ring of entries (length, key length, key, encoded state), appended
//     in the order keys are first cached (an update of the same size is
//     written in place, others are appended again); when the ring is full
//     the oldest entries are overwritten, first in, first out;
//   - an index of buckets of cacheWays slots, each the ring position of an
//     entry tagged with 8 bits of its key's hash. A lookup compares the whole
//     key, so a hash collision is a miss, never another key's state.
//
// A key costs its entry (3 bytes besides key and state) and its share of
// the index: about 100 bytes with an integer key and a UUID eid, where a Go
// map of strings took 163 (measured with 1M states).
type keyCache struct {
	ring  []byte
	index []uint64 // 0: empty; else tag<<56 | (position+1)
	mask  uint64   // buckets - 1
	head  uint64   // position of the next entry: bytes ever appended
	tail  uint64   // position of the oldest entry not overwritten
	seed  maphash.Seed
	buf   []byte
}

const (
	cacheWays   = 8
	entryHeader = 3    // uint16 entry length, key length
	padKey      = 0xff // key length of the padding before the ring wraps
	maxEntry    = 1024 // larger entries are not cached
	posBits     = 56
)

// newKeyCache makes a cache of maxBytes (ring and index); below 4 KiB:
// no cache.
func newKeyCache(maxBytes int64) (*keyCache, error) {
	c := &keyCache{seed: maphash.MakeSeed()}
	if maxBytes < 4<<10 {
		return c, nil // too small to hold anything useful: no cache
	}
	// At most a fifth of the memory is index (a power of two of buckets):
	// one slot per 32–72 bytes of ring, where an entry takes 50–100 bytes.
	// A full bucket drops its oldest entry.
	buckets := uint64(1)
	for buckets*2*cacheWays*8 <= uint64(maxBytes)/5 {
		buckets *= 2
	}
	// Anonymous memory outside the Go heap: the garbage collector neither
	// scans nor counts it (as many bytes of heap would raise the heap goal
	// by GOGC percent of them), and a page takes memory only once written.
	mem, err := unix.Mmap(-1, 0, int(maxBytes), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("engine: key cache of %d bytes: %w", maxBytes, err)
	}
	runtime.AddCleanup(c, func(m []byte) { _ = unix.Munmap(m) }, mem)
	indexBytes := buckets * cacheWays * 8
	c.index = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), buckets*cacheWays)
	c.mask = buckets - 1
	c.ring = mem[indexBytes:]
	return c, nil
}

// cacheRef is where get found an entry, so that putting the key's new
// state after the step needs no second lookup while the entry is still
// there.
type cacheRef struct {
	slot int
	word uint64 // the index slot's value when found; 0: none
}

// found reports whether the ref was set by a hit.
func (r cacheRef) found() bool { return r.word != 0 }

// locate finds mk's entry and sets ref to it.
func (c *keyCache) locate(mk string, ref *cacheRef) (pos uint64, ok bool) {
	if c.ring == nil {
		return 0, false
	}
	slot, pos, ok := c.find(maphash.String(c.seed, mk), mk)
	if ok {
		*ref = cacheRef{slot: slot, word: c.index[slot]}
	}
	return pos, ok
}

// get decodes a cached state into st and sets ref; hit is false on a miss.
func (c *keyCache) get(mk string, st *compact.KeyState, ref *cacheRef) (hit bool, err error) {
	pos, ok := c.locate(mk, ref)
	if !ok {
		return false, nil
	}
	v := c.value(pos)
	if len(v) == 0 {
		*st = compact.KeyState{Hi: st.Hi[:0], HiEID: st.HiEID[:0]}
		return true, nil
	}
	err = st.Decode(v)   // copies what it keeps
	runtime.KeepAlive(c) // its cleanup unmaps v's memory
	return true, err
}

// put records a key's committed state.
func (c *keyCache) put(mk string, st *compact.KeyState) {
	if c.ring == nil {
		return
	}
	var enc []byte
	if st.HasHi || st.Open {
		c.buf = st.AppendEncoded(c.buf[:0])
		enc = c.buf
	}
	c.putEncoded(mk, enc, nil)
}

// putEncoded records a key's committed state as encoded by
// KeyState.AppendEncoded; empty: the key has no state. ref, if not nil, is
// where get found the key (a hint: checked before use).
func (c *keyCache) putEncoded(mk string, enc []byte, ref *cacheRef) {
	if c.ring == nil {
		return
	}
	n := entryHeader + len(mk) + len(enc)
	h := maphash.String(c.seed, mk)
	// The entry get found is still mk's if its index slot is unchanged and
	// the ring has not overwritten it since; else look it up.
	slot, pos, ok := 0, uint64(0), false
	if ref != nil && ref.found() && c.index[ref.slot] == ref.word {
		slot, pos = ref.slot, ref.word&(1<<posBits-1)-1
		ok = pos >= c.tail
	}
	if !ok {
		slot, pos, ok = c.find(h, mk)
	}
	if ok {
		if c.entryLen(pos) == n {
			copy(c.value(pos), enc) // same size: in place
			runtime.KeepAlive(c)
			return
		}
		c.index[slot] = 0 // the old entry is garbage now
	}
	if len(mk) >= padKey || n > maxEntry || n > len(c.ring)/4 {
		return // not cacheable (and the old state is gone from the index)
	}
	pos = c.append(mk, enc, n)
	c.index[c.victim(h)] = h>>posBits<<posBits | (pos + 1)
	runtime.KeepAlive(c)
}

// find returns the index slot and ring position of mk's entry.
func (c *keyCache) find(h uint64, mk string) (slot int, pos uint64, ok bool) {
	first := int(h&c.mask) * cacheWays
	tag := h >> posBits
	for i := first; i < first+cacheWays; i++ {
		s := c.index[i]
		if s == 0 || s>>posBits != tag {
			continue
		}
		p := s&(1<<posBits-1) - 1
		if p < c.tail {
			continue // overwritten
		}
		if string(c.key(p)) == mk {
			return i, p, true
		}
	}
	return 0, 0, false
}

// victim returns the slot of h's bucket to use for a new entry: an empty or
// overwritten one, else the one of the oldest entry.
func (c *keyCache) victim(h uint64) int {
	first := int(h&c.mask) * cacheWays
	best, bestPos := first, uint64(1<<64-1)
	for i := first; i < first+cacheWays; i++ {
		s := c.index[i]
		if s == 0 {
			return i
		}
		p := s&(1<<posBits-1) - 1
		if p < c.tail {
			return i
		}
		if p < bestPos {
			best, bestPos = i, p
		}
	}
	return best
}

// inUse is the memory the cache has written: its index and the part of the
// ring written so far (pages never written take none).
func (c *keyCache) inUse() int64 {
	return int64(len(c.index))*8 + int64(min(c.head, uint64(len(c.ring))))
}

// append writes an entry of n bytes at the head and returns its position.
// Entries are contiguous: one that does not fit before the ring's end goes
// to its start, after padding.
func (c *keyCache) append(mk string, enc []byte, n int) uint64 {
	size := uint64(len(c.ring))
	off := c.head % size
	if rest := size - off; rest < uint64(n) {
		c.reserve(rest)
		if rest >= entryHeader {
			binary.LittleEndian.PutUint16(c.ring[off:], uint16(rest))
			c.ring[off+2] = padKey
		}
		c.head += rest
		off = 0
	}
	c.reserve(uint64(n))
	e := c.ring[off : off+uint64(n)]
	binary.LittleEndian.PutUint16(e, uint16(n))
	e[2] = byte(len(mk))
	copy(e[entryHeader:], mk)
	copy(e[entryHeader+len(mk):], enc)
	pos := c.head
	c.head += uint64(n)
	return pos
}

// reserve moves the tail past every entry the next n bytes overwrite.
func (c *keyCache) reserve(n uint64) {
	size := uint64(len(c.ring))
	for c.head+n > c.tail+size {
		off := c.tail % size
		if rest := size - off; rest < entryHeader {
			c.tail += rest // padding too short for a header
			continue
		}
		c.tail += uint64(binary.LittleEndian.Uint16(c.ring[off:]))
	}
}

func (c *keyCache) entryLen(pos uint64) int {
	return int(binary.LittleEndian.Uint16(c.ring[pos%uint64(len(c.ring)):]))
}

func (c *keyCache) key(pos uint64) []byte {
	off := pos % uint64(len(c.ring))
	return c.ring[off+entryHeader : off+entryHeader+uint64(c.ring[off+2])]
}

func (c *keyCache) value(pos uint64) []byte {
	off := pos % uint64(len(c.ring))
	return c.ring[off+entryHeader+uint64(c.ring[off+2]) : off+uint64(c.entryLen(pos))]
}

// clear forgets every entry.
func (c *keyCache) clear() {
	c.tail = c.head
}
