package state

import (
	"fmt"
	"strings"
)

// Slot is the durable id of one (event type, partition) pair.
type Slot uint32

// Partition names an event type's partition.
type Partition struct {
	EventType string
	Partition string
}

// Cursor is how far one partition has been applied.
type Cursor struct {
	Offset   string // offset of the last applied batch ("" = nothing applied yet)
	RingHead uint64 // seq of the oldest ring entry kept
	RingNext uint64 // seq the next ring entry gets
}

// RingEntry is one recent durable batch of a partition: the events after the
// previous entry's offset up to and including Offset. Count is how many of
// them were applied (a redelivered prefix that was skipped is not counted).
type RingEntry struct {
	Seq      uint64
	Offset   string
	Count    uint64
	FirstEID string
}

// Counters are the per-event-type buckets of every received event. The identity
// Received = Main + Superseded + Duplicate + Correction + Rejected + Open
// holds after every committed step.
type Counters struct {
	Received   uint64 `json:"received"`
	Main       uint64 `json:"main"`
	Superseded uint64 `json:"superseded"`
	Duplicate  uint64 `json:"duplicate"`
	Correction uint64 `json:"correction"`
	Rejected   uint64 `json:"rejected"`
	Open       uint64 `json:"open"`
	// Redelivered counts events Nakadi sent again that were recognized as
	// already applied and skipped. It is not part of the identity.
	Redelivered uint64 `json:"redelivered"`
}

// String shows the identity with its values: "received N = main N + …
// (balanced)".
func (c Counters) String() string {
	balanced := "balanced"
	if !c.Balanced() {
		balanced = "NOT BALANCED"
	}
	return fmt.Sprintf("received %d = main %d + superseded %d + duplicate %d + correction %d + rejected %d + open %d (%s)",
		c.Received, c.Main, c.Superseded, c.Duplicate, c.Correction, c.Rejected, c.Open, balanced)
}

// Balanced reports whether the identity holds.
func (c Counters) Balanced() bool {
	return c.Received == c.Main+c.Superseded+c.Duplicate+c.Correction+c.Rejected+c.Open
}

// FileID names a stream of files: one per (event type, table, kind, partition).
type FileID struct {
	EventType string
	Table     string
	Kind      string // main | correction | rejected
	Partition string
}

func (id FileID) key() string {
	return id.EventType + "\x00" + id.Table + "\x00" + id.Kind + "\x00" + id.Partition
}

func parseFileID(s string) (FileID, bool) {
	p := strings.Split(s, "\x00")
	if len(p) != 4 {
		return FileID{}, false
	}
	return FileID{EventType: p[0], Table: p[1], Kind: p[2], Partition: p[3]}, true
}

// Column is a column's name and type as announced in notices.
type Column struct {
	Name string
	Type string
}

// File is a staging file: open (its record under 'G') or sealed (inside an
// Outbox entry).
type File struct {
	ID          FileID
	Seq         uint64
	Name        string // base name in the staging directory, final from open
	Writer      string // writer id the file was named with
	Length      int64  // bytes on disk that belong to the file; beyond is garbage after a crash
	Rows        int64  // data rows (not the header)
	Events      int64  // events those rows came from
	Created     int64  // unix nanoseconds, processing time of the first row
	MinOccurred int64  // unix nanoseconds of the smallest metadata.occurred_at; 0 = unknown
	MaxOccurred int64
	Mapping     string // fingerprint of the table's columns when the file opened
	Header      bool   // the file starts with a header row
	Compression string // none | gzip
	Columns     []Column
	// Final: no byte will be added to the file any more (a sealed segment
	// of the engine's session log); a checkpoint may link it as it is.
	Final bool
}

// Outbox is a sealed file waiting to be uploaded and announced.
type Outbox struct {
	File
	Key      string // object key relative to the storage prefix
	Sealed   int64  // unix nanoseconds; the notice's created_at and the key's dt
	Uploaded bool
	SHA256   string // of the stored object, set once uploaded
	Bytes    int64
}

func encodeCursor(c Cursor) []byte {
	e := enc{}
	e.str(c.Offset)
	e.uvarint(c.RingHead)
	e.uvarint(c.RingNext)
	return e.b
}

func decodeCursor(v []byte) (Cursor, error) {
	d := dec{b: v}
	c := Cursor{Offset: d.str(), RingHead: d.uvarint(), RingNext: d.uvarint()}
	return c, d.err
}

func encodeRing(r RingEntry) []byte {
	e := enc{}
	e.str(r.Offset)
	e.uvarint(r.Count)
	e.str(r.FirstEID)
	return e.b
}

func decodeRing(seq uint64, v []byte) (RingEntry, error) {
	d := dec{b: v}
	r := RingEntry{Seq: seq, Offset: d.str(), Count: d.uvarint(), FirstEID: d.str()}
	return r, d.err
}

func encodeCounters(c Counters) []byte {
	e := enc{}
	for _, v := range []uint64{c.Received, c.Main, c.Superseded, c.Duplicate, c.Correction, c.Rejected, c.Open, c.Redelivered} {
		e.uvarint(v)
	}
	return e.b
}

func decodeCounters(v []byte) (Counters, error) {
	d := dec{b: v}
	c := Counters{Received: d.uvarint(), Main: d.uvarint(), Superseded: d.uvarint(), Duplicate: d.uvarint(),
		Correction: d.uvarint(), Rejected: d.uvarint(), Open: d.uvarint(), Redelivered: d.uvarint()}
	return c, d.err
}

func (e *enc) file(f *File) {
	e.str(f.ID.key())
	e.uvarint(f.Seq)
	e.str(f.Name)
	e.str(f.Writer)
	e.varint(f.Length)
	e.varint(f.Rows)
	e.varint(f.Events)
	e.varint(f.Created)
	e.varint(f.MinOccurred)
	e.varint(f.MaxOccurred)
	e.str(f.Mapping)
	e.bool(f.Header)
	e.str(f.Compression)
	e.uvarint(uint64(len(f.Columns)))
	for _, c := range f.Columns {
		e.str(c.Name)
		e.str(c.Type)
	}
}

func (d *dec) file(f *File) {
	id, ok := parseFileID(d.str())
	if !ok && d.err == nil {
		d.fail()
	}
	f.ID = id
	f.Seq = d.uvarint()
	f.Name = d.str()
	f.Writer = d.str()
	f.Length = d.varint()
	f.Rows = d.varint()
	f.Events = d.varint()
	f.Created = d.varint()
	f.MinOccurred = d.varint()
	f.MaxOccurred = d.varint()
	f.Mapping = d.str()
	f.Header = d.bool()
	f.Compression = d.str()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return
	}
	f.Columns = make([]Column, n)
	for i := range f.Columns {
		f.Columns[i] = Column{Name: d.str(), Type: d.str()}
	}
}

func encodeFile(f *File) []byte {
	e := enc{}
	e.file(f)
	e.bool(f.Final)
	return e.b
}

func decodeFile(v []byte) (File, error) {
	d := dec{b: v}
	var f File
	d.file(&f)
	if len(d.b) > 0 {
		f.Final = d.bool()
	}
	return f, d.err
}

func encodeOutbox(o *Outbox) []byte {
	e := enc{}
	e.file(&o.File)
	e.str(o.Key)
	e.varint(o.Sealed)
	e.bool(o.Uploaded)
	e.str(o.SHA256)
	e.varint(o.Bytes)
	return e.b
}

func decodeOutbox(v []byte) (Outbox, error) {
	d := dec{b: v}
	var o Outbox
	d.file(&o.File)
	o.Key = d.str()
	o.Sealed = d.varint()
	o.Uploaded = d.bool()
	o.SHA256 = d.str()
	o.Bytes = d.varint()
	return o, d.err
}
