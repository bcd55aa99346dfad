package compact

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// The encoding is the key-state record of the state layer: it must not
// change without a new state format version.
func TestKeyStateEncodingIsStable(t *testing.T) {
	st := KeyState{HasHi: true, Hi: []byte{3, 1, 2}, HiEID: []byte("e1"), Open: true, OpenedAt: -5, LastAt: 10, ClosedAt: 0}
	want := []byte{3, 3, 3, 1, 2, 2, 'e', '1', 9, 20, 0}
	got := st.AppendEncoded(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding %v, want %v", got, want)
	}
	var back KeyState
	if err := back.Decode(got); err != nil || !reflect.DeepEqual(back, st) {
		t.Fatalf("decoded %+v (%v), want %+v", back, err, st)
	}
	for n := range len(got) {
		var cut KeyState
		if err := cut.Decode(got[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d of %d bytes decoded: %v", n, len(got), err)
		}
	}
}
