package engine

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"materializer/pipeline/compact"
	"materializer/pipeline/nakadi"
)

// TestKeyCacheAgainstMap puts and gets random keys with values of random
// sizes (some too large to cache) in a small cache and checks every hit
// against a map of the newest values: a key may be evicted, but a hit must
// never return an older value or another key's.
func TestKeyCacheAgainstMap(t *testing.T) {
	for _, size := range []int64{4 << 10, 64 << 10, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := mustKeyCache(t, size)
			ringLen, indexLen := len(c.ring), len(c.index)
			if got := int64(ringLen + 8*indexLen); got != size {
				t.Fatalf("cache takes %d bytes, want %d", got, size)
			}
			rng := rand.New(rand.NewPCG(7, uint64(size)))
			want := map[string][]byte{}
			// Where a get found each key; a put passes it (as the engine
			// does) half the time, however stale it is by then.
			refs := map[string]cacheRef{}
			hits, gets := 0, 0
			for i := 0; i < 200_000; i++ {
				k := fmt.Sprintf("\x00\x00\x00\x01key-%d", rng.IntN(2000))
				if rng.IntN(3) == 0 {
					gets++
					var ref cacheRef
					v, ok := c.lookup(k, &ref)
					if !ok {
						continue
					}
					hits++
					refs[k] = ref
					if w, known := want[k]; !known || !bytes.Equal(v, w) {
						t.Fatalf("op %d: %q: got %q, want %q (known %v)", i, k, v, w, known)
					}
					continue
				}
				n := rng.IntN(80)
				if rng.IntN(100) == 0 {
					n = 2000 // larger than an entry may be
				}
				v := bytes.Repeat([]byte{byte('a' + i%26)}, n)
				var ref *cacheRef
				if r, ok := refs[k]; ok && rng.IntN(2) == 0 {
					ref = &r
				}
				c.putEncoded(k, v, ref)
				want[k] = v
			}
			if len(c.ring) != ringLen || len(c.index) != indexLen {
				t.Fatal("the cache grew")
			}
			if c.head <= uint64(ringLen) {
				t.Fatalf("the ring never wrapped (%d bytes written)", c.head)
			}
			t.Logf("%d of %d gets hit", hits, gets)
			if size >= 1<<20 && hits < gets*9/10 {
				t.Errorf("a cache larger than all keys hit only %d of %d gets", hits, gets)
			}
		})
	}
}

func mustKeyCache(t *testing.T, size int64) *keyCache {
	t.Helper()
	c, err := newKeyCache(size)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lookup returns the raw cached value of mk and sets ref like get.
func (c *keyCache) lookup(mk string, ref *cacheRef) ([]byte, bool) {
	pos, ok := c.locate(mk, ref)
	if !ok {
		return nil, false
	}
	return c.value(pos), true
}

// TestKeyCacheStaleRef: a put with the position a get found uses it only
// while the entry is still there — not once the ring overwrote it with
// another key's entry of the same size at the same place.
func TestKeyCacheStaleRef(t *testing.T) {
	c := mustKeyCache(t, 4<<10)
	key := func(i int) string { return fmt.Sprintf("\x00\x00\x00\x01key-%03d", i) }
	val := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	c.putEncoded(key(0), val(20, 'a'), nil) // at the ring's start
	var ref cacheRef
	if _, ok := c.lookup(key(0), &ref); !ok {
		t.Fatal("miss")
	}
	c.putEncoded(key(0), val(20, 'b'), &ref) // fresh ref: in place
	if v, ok := c.lookup(key(0), &cacheRef{}); !ok || !bytes.Equal(v, val(20, 'b')) || c.head != uint64(3+len(key(0))+20) {
		t.Fatalf("after an update in place: %q, %v, ring head %d", v, ok, c.head)
	}
	// Other keys, all of other buckets than key 0's (else one could take
	// its index slot), each appended once with a value of key 0's size,
	// until the ring has wrapped and overwritten key 0's entry: the entry
	// at the ring's start is then another key's, of the same size.
	bucket := func(k string) uint64 { return maphash.String(c.seed, k) & c.mask }
	want := map[string][]byte{}
	for i := 1; c.tail == 0; i++ {
		if k := key(i); bucket(k) != bucket(key(0)) {
			c.putEncoded(k, val(20, byte('c'+i%20)), nil)
			want[k] = val(20, byte('c'+i%20))
		}
	}
	if c.index[ref.slot] != ref.word {
		t.Fatal("key 0's index slot was reused: the test proves nothing")
	}
	c.putEncoded(key(0), val(20, 'z'), &ref)
	want[key(0)] = val(20, 'z')
	for k, w := range want {
		if v, ok := c.lookup(k, &cacheRef{}); ok && !bytes.Equal(v, w) {
			t.Fatalf("%q: got %q, want %q", k, v, w)
		}
	}
}

func TestKeyCacheStates(t *testing.T) {
	c := mustKeyCache(t, 1<<20)
	st := compact.KeyState{HasHi: true, Open: true, Hi: []byte{0x80, 7}, HiEID: []byte("e-1"), OpenedAt: 10, LastAt: 20}
	c.put("\x00\x00\x00\x01k", &st)
	c.put("\x00\x00\x00\x01gone", &compact.KeyState{})
	var got compact.KeyState
	if hit, err := c.get("\x00\x00\x00\x01k", &got, &cacheRef{}); !hit || err != nil {
		t.Fatalf("hit %v, err %v", hit, err)
	}
	if !bytes.Equal(got.AppendEncoded(nil), st.AppendEncoded(nil)) {
		t.Fatalf("got %+v, want %+v", got, st)
	}
	got = compact.KeyState{HasHi: true, Hi: []byte("x")}
	if hit, _ := c.get("\x00\x00\x00\x01gone", &got, &cacheRef{}); !hit || got.HasHi || got.Open || len(got.Hi) != 0 {
		t.Fatalf("a key known to have no state: hit %v, %+v", hit, got)
	}
	if hit, _ := c.get("\x00\x00\x00\x02k", &got, &cacheRef{}); hit {
		t.Fatal("another slot's key hit")
	}
	c.clear()
	if hit, _ := c.get("\x00\x00\x00\x01k", &got, &cacheRef{}); hit {
		t.Fatal("hit after clear")
	}
	if off := mustKeyCache(t, 0); off.ring != nil {
		t.Fatal("a cache of 0 bytes holds entries")
	}
}

// TestKeyStateLookups: the key filter knows a key that was never seen has
// no state (no Pebble read); later steps find the key in the cache; after a
// restart (empty cache, filter rebuilt from the state) a known key is read
// from Pebble, a new one is still known to be new; the metric says so.
func TestKeyStateLookups(t *testing.T) {
	h := newHarness(t)
	args := map[string]string{"key": "article_id", "order": "version", "gap": "120s", "max": "1800s", "retention": "168h"}
	h.types = []EventType{testEventType(t, "article.updated", args, []string{"article article_id:int version:int"})}
	h.open()
	defer h.close()
	batch := func(keys ...int) []*nakadi.Batch {
		b := &nakadi.Batch{StreamID: h.stream, Cursor: nakadi.Cursor{EventType: "article.updated", Partition: "0"}}
		for _, k := range keys {
			h.offsets["0"]++
			b.Events = append(b.Events, benchEvent(k, h.offsets["0"], 300))
		}
		b.Cursor.Offset = offset(h.offsets["0"])
		return []*nakadi.Batch{b}
	}
	m := h.e.opts.Metrics
	check := func(when string, hits, news, reads float64) {
		t.Helper()
		if h, n, r := metricValue(m.KeyCacheHits), metricValue(m.NewKeys), metricValue(m.KeyStateReads); h != hits || n != news || r != reads {
			t.Fatalf("%s: %v cache hits, %v new, %v state reads; want %v, %v and %v", when, h, n, r, hits, news, reads)
		}
	}
	h.step(batch(1, 2, 2), nil)
	check("two new keys", 0, 2, 0)
	h.step(batch(1, 1, 3), nil)
	check("one known key, one new", 1, 3, 0)
	h.close()
	h.open() // a new engine starts with an empty cache
	m = h.e.opts.Metrics
	h.step(batch(1, 4), nil)
	check("after a restart", 0, 1, 1)
}
