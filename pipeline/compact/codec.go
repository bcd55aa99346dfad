package compact

import (
	"encoding/binary"
	"errors"
)

// ErrCorrupt is returned when a stored key state does not decode.
var ErrCorrupt = errors.New("compact: corrupt key state")

// AppendEncoded appends the stored encoding of the key state: a uvarint of
// flags (1 HasHi, 2 Open), Hi and HiEID length-prefixed, then OpenedAt,
// LastAt, ClosedAt and Filed as varints. The state layer keeps it as bytes.
// (State format 1 had no Filed: a value without it decodes with Filed 0.)
func (st *KeyState) AppendEncoded(dst []byte) []byte {
	var flags uint64
	if st.HasHi {
		flags |= 1
	}
	if st.Open {
		flags |= 2
	}
	dst = binary.AppendUvarint(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(st.Hi)))
	dst = append(dst, st.Hi...)
	dst = binary.AppendUvarint(dst, uint64(len(st.HiEID)))
	dst = append(dst, st.HiEID...)
	dst = binary.AppendVarint(dst, st.OpenedAt)
	dst = binary.AppendVarint(dst, st.LastAt)
	dst = binary.AppendVarint(dst, st.ClosedAt)
	return binary.AppendVarint(dst, st.Filed)
}

// Decode decodes a stored encoding into st, reusing its slices (it keeps
// nothing of v).
func (st *KeyState) Decode(v []byte) error {
	_, err := st.DecodePrefix(v)
	return err
}

// DecodePrefix decodes the key state at the start of v and returns what
// follows it (a session record carries its best event there). The key state
// must be followed by something else or nothing: a format-1 state (without
// Filed) is read only as a whole value.
func (st *KeyState) DecodePrefix(v []byte) (rest []byte, err error) {
	d := decoder{b: v}
	flags := d.uvarint()
	st.HasHi = flags&1 != 0
	st.Open = flags&2 != 0
	st.Hi = append(st.Hi[:0], d.bytes()...)
	st.HiEID = append(st.HiEID[:0], d.bytes()...)
	st.OpenedAt = d.varint()
	st.LastAt = d.varint()
	st.ClosedAt = d.varint()
	st.Filed = 0
	if len(d.b) > 0 {
		st.Filed = d.varint()
	}
	return d.b, d.err
}

// decoder reads fields in the order AppendEncoded wrote them; the first
// failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if d.err != nil || n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if d.err != nil || n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = ErrCorrupt
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
