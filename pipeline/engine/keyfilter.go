package engine

import (
	"hash/maphash"
	"math/bits"
)

// keyFilter is a Bloom filter of every key that has state: a key it does
// not hold has never been seen (or was forgotten), so its event needs no
// Pebble lookup — where events of new keys are common (a catalogue of
// millions of resources, most updated once or twice), that is most
// lookups. A false "maybe" costs only the lookup. It is fixed in size (part
// of the key cache's share of the memory budget): past the keys it was
// sized for, it answers "maybe" more often, never wrongly "no". It is
// rebuilt from the key states at start (not at a failed step's retry: it
// stays a superset) and learns a key once its state is committed.
type keyFilter struct {
	words []uint64
	mask  uint64 // bits - 1
	seed  maphash.Seed
}

// filterProbes is how many bits a key sets (k); with 10 bits per key, k=7
// gives about 1% false positives.
const filterProbes = 7

// newKeyFilter makes a filter of about maxBytes (a power of two of bits);
// below 1 KiB: none (every key is "maybe").
func newKeyFilter(maxBytes int64) *keyFilter {
	f := &keyFilter{seed: maphash.MakeSeed()}
	if maxBytes < 1<<10 {
		return f
	}
	nbits := uint64(1) << (63 - bits.LeadingZeros64(uint64(maxBytes)*8))
	f.words = make([]uint64, nbits/64)
	f.mask = nbits - 1
	return f
}

// probes derives the filter's bit positions from one hash (double hashing).
func (f *keyFilter) probes(mk string, fn func(bit uint64) bool) bool {
	h := maphash.String(f.seed, mk)
	step := h>>32 | 1
	for i := range uint64(filterProbes) {
		if !fn((h + i*step) & f.mask) {
			return false
		}
	}
	return true
}

// add records a key (its slot key: slot + key).
func (f *keyFilter) add(mk string) {
	if f.words == nil {
		return
	}
	f.probes(mk, func(b uint64) bool { f.words[b/64] |= 1 << (b % 64); return true })
}

// mayHave is false when the key surely has no state.
func (f *keyFilter) mayHave(mk string) bool {
	if f.words == nil {
		return true
	}
	return f.probes(mk, func(b uint64) bool { return f.words[b/64]&(1<<(b%64)) != 0 })
}

// clear forgets every key (before a rebuild).
func (f *keyFilter) clear() {
	clear(f.words)
}

// bytes is the filter's memory.
func (f *keyFilter) bytes() int64 { return int64(len(f.words)) * 8 }
