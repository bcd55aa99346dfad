// Package flatten turns one JSON event into rows of one or more flat CSV
// tables (docs/mapping.md). It is pure: no I/O, no clock, no globals.
package flatten

import (
	"fmt"
	"strings"
)

// Type is the CSV rendering and validation rule of a column.
type Type string

// Column types (docs/mapping.md).
const (
	TypeString    Type = "string"
	TypeInt       Type = "int"
	TypeDecimal   Type = "decimal"
	TypeBool      Type = "bool"
	TypeTimestamp Type = "timestamp"
	TypeJSON      Type = "json"
)

// Source says where a column's value comes from. The zero value means the
// event body at Path.
type Source string

// Column sources besides the event body, for lineage and exploded arrays.
const (
	SourceEvent     Source = ""           // the event body at Path (default)
	SourceOrdinal   Source = "ordinal"    // index of the exploded element of the array named by Path (ends in [*])
	SourcePartition Source = "partition"  // Nakadi partition
	SourceOffset    Source = "offset"     // Nakadi offset (the batch cursor's when the exact one is unknown)
	SourceEventType Source = "event_type" // Nakadi event type
)

// ColumnSpec is one configured column.
type ColumnSpec struct {
	Name     string
	Path     string
	Type     Type // empty means TypeString
	Required bool
	Source   Source
}

// TableSpec is one configured table of an event type.
type TableSpec struct {
	Name    string
	Columns []ColumnSpec
}

// CSV holds the [csv] options.
type CSV struct {
	Delimiter byte
	Header    bool
	Null      string
}

// Problem is one thing wrong with a table spec. Column is -1 when the problem
// is with the table itself; Field names the column's key ("path", "type", ...).
type Problem struct {
	Table  int
	Column int
	Field  string
	Value  string
	Msg    string
}

// Error prints the problem with its key: tables[T].columns[C].field for a
// column, tables[T].field for a table (Column = -1), field alone for the
// event type or the [csv] options (Table = -1).
func (p Problem) Error() string {
	switch {
	case p.Table < 0:
		return fmt.Sprintf("%s: %q %s", p.Field, p.Value, p.Msg)
	case p.Column < 0:
		return fmt.Sprintf("tables[%d].%s: %q %s", p.Table, p.Field, p.Value, p.Msg)
	}
	return fmt.Sprintf("tables[%d].columns[%d].%s: %q %s", p.Table, p.Column, p.Field, p.Value, p.Msg)
}

// Problems is every problem Compile found.
type Problems []Problem

func (ps Problems) Error() string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "; ")
}
