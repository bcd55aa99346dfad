package engine

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestSortKeys: sortKeys orders like comparing the whole slot keys, also
// for keys that are short, share long prefixes or end in zero bytes.
func TestSortKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte{0, 1, 'a', 'b', 0xff}
	for round := 0; round < 200; round++ {
		var order []*keyEntry
		for i := 0; i < 50; i++ {
			k := make([]byte, rng.IntN(24))
			for j := range k {
				k[j] = alphabet[rng.IntN(len(alphabet))]
			}
			order = append(order, &keyEntry{slotKey: string(k)})
		}
		want := slices.Clone(order)
		slices.SortStableFunc(want, func(a, b *keyEntry) int { return strings.Compare(a.slotKey, b.slotKey) })
		sortKeys(order)
		for i := range order {
			if order[i].slotKey != want[i].slotKey {
				t.Fatalf("round %d, position %d: %q, want %q", round, i, order[i].slotKey, want[i].slotKey)
			}
		}
	}
}
