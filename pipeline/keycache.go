package pipeline

import (
	"unsafe"

	"materializer/pipeline/compact"
	"materializer/state"
)

// keyCache keeps the committed, encoded state of recently used keys, so a
// step whose keys were seen lately needs no Pebble lookup — in update
// streams most events are for keys updated shortly before. It is bounded in
// bytes (not by the number of keys in state): when full, arbitrary entries
// are evicted (Go's map iteration starts at a random place). It is updated
// only after a step commits and cleared by recovery, so it never holds
// state that is not durable.
type keyCache struct {
	max  int64
	size int64
	m    map[string]string // slot (4 bytes) + key → encoded compact.KeyState ("" = no state)
	buf  []byte
}

// entryOverhead approximates a map entry's memory besides key and value.
const entryOverhead = 48

func newKeyCache(maxBytes int64) *keyCache {
	return &keyCache{max: maxBytes, m: map[string]string{}}
}

// get decodes a cached state into st; hit is false on a miss.
func (c *keyCache) get(mk string, st *compact.KeyState) (hit bool, err error) {
	v, ok := c.m[mk]
	if !ok {
		return false, nil
	}
	if v == "" {
		*st = compact.KeyState{Hi: st.Hi[:0], HiEID: st.HiEID[:0]}
		return true, nil
	}
	// DecodeKeyState copies what it keeps, so v's bytes can be read in place.
	return true, state.DecodeKeyState(unsafe.Slice(unsafe.StringData(v), len(v)), st)
}

// put records a key's committed state.
func (c *keyCache) put(mk string, st *compact.KeyState) {
	if c.max <= 0 {
		return
	}
	var enc []byte
	if st.HasHi || st.Open {
		c.buf = state.EncodeKeyState(c.buf[:0], st)
		enc = c.buf
	}
	c.putEncoded(mk, enc)
}

// putEncoded records a key's committed state as encoded by
// state.EncodeKeyState; empty: the key has no state.
func (c *keyCache) putEncoded(mk string, enc []byte) {
	if c.max <= 0 {
		return
	}
	v := string(enc)
	if old, ok := c.m[mk]; ok {
		c.size += int64(len(v) - len(old))
		c.m[mk] = v
		return
	}
	for c.size+int64(len(mk)+len(v)+entryOverhead) > c.max && len(c.m) > 0 {
		for k, old := range c.m {
			delete(c.m, k)
			c.size -= int64(len(k) + len(old) + entryOverhead)
			break
		}
	}
	c.m[mk] = v
	c.size += int64(len(mk) + len(v) + entryOverhead)
}

func (c *keyCache) clear() {
	clear(c.m)
	c.size = 0
}
