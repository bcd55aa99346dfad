package compact

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// The encoding is the key-state record of the state layer (format 2): it
// must not change without a new state format version.
func TestKeyStateEncodingIsStable(t *testing.T) {
	st := KeyState{HasHi: true, Hi: []byte{3, 1, 2}, HiEID: []byte("e1"), Open: true, OpenedAt: -5, LastAt: 10, Filed: 7}
	want := []byte{3, 3, 3, 1, 2, 2, 'e', '1', 9, 20, 0, 14}
	got := st.AppendEncoded(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding %v, want %v", got, want)
	}
	var back KeyState
	if err := back.Decode(got); err != nil || !reflect.DeepEqual(back, st) {
		t.Fatalf("decoded %+v (%v), want %+v", back, err, st)
	}
	for n := range len(got) - 1 {
		var cut KeyState
		if err := cut.Decode(got[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d of %d bytes decoded: %v", n, len(got), err)
		}
	}
	// Format 1 had no Filed: its values decode with Filed 0.
	var v1 KeyState
	if err := v1.Decode(want[:len(want)-1]); err != nil || v1.Filed != 0 || !v1.Open || v1.LastAt != 10 {
		t.Fatalf("format-1 value: %+v, %v", v1, err)
	}
	// A session record carries its best event after the key state.
	rec := append(st.AppendEncoded(nil), "best"...)
	var prefix KeyState
	if rest, err := prefix.DecodePrefix(rec); err != nil || string(rest) != "best" || prefix.Filed != 7 {
		t.Fatalf("prefix: %+v, rest %q, %v", prefix, rest, err)
	}
}
