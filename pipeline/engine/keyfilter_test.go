package engine

import (
	"fmt"
	"testing"
)

// The key filter never says "no" for a key it holds, and says "maybe" for
// few others: about 1% at 10 bits per key or more, more (never "no" wrongly) past
// the keys it was sized for.
func TestKeyFilter(t *testing.T) {
	const keys = 10_000
	f := newKeyFilter(keys * 2) // 16 bits a key, 13 after rounding down to a power of two
	for i := range keys {
		f.add(fmt.Sprintf("k%d", i))
	}
	for i := range keys {
		if !f.mayHave(fmt.Sprintf("k%d", i)) {
			t.Fatalf("key %d added but not held", i)
		}
	}
	fp := 0
	for i := range keys {
		if f.mayHave(fmt.Sprintf("other%d", i)) {
			fp++
		}
	}
	if rate := float64(fp) / keys; rate > 0.03 {
		t.Errorf("false positives %.2f%% at 13 bits a key", 100*rate)
	}
	f.clear()
	if f.mayHave("k1") {
		t.Error("a cleared filter holds a key")
	}
	if none := newKeyFilter(100); !none.mayHave("anything") {
		t.Error("a filter too small to exist must answer maybe")
	}
}
