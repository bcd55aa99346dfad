package flatten

import "strings"

// Mapping is the compiled form of an event type's tables. It is immutable
// and safe for concurrent use by many goroutines (each with its own Parser).
type Mapping struct {
	csv    csvOut
	header bool
	tables []table
	limits Limits
}

// table is one compiled table.
type table struct {
	name string
	cols []column
	// levels[k] are the steps from the element of level k (level 0 = the
	// event) to the array exploded at level k+1, without its [*].
	levels [][]step
	// byLevel[k] lists the event columns that read from the element of
	// level k, in column order.
	byLevel [][]int
	header  []byte
}

// column is one compiled column.
type column struct {
	name     string
	typ      Type
	source   Source
	required bool
	path     Path
	level    int    // the element read: 0 = the event, k = the element of the k-th [*]
	rest     []step // steps from that element (event source)
	plain    bool   // its rendered values never need CSV quoting
}

// alphabets are the bytes the rendered values of the typed columns are
// made of (ordinals are ints).
var alphabets = map[Type]string{
	TypeInt:       "-0123456789",
	TypeDecimal:   "-.0123456789",
	TypeBool:      "aeflrstu",
	TypeTimestamp: "-.:0123456789TZ",
}

// neverQuoted reports whether no value of type typ needs quoting under c:
// the delimiter is not in the type's alphabet and no value can equal the
// null marker (values are never empty, never \.).
func neverQuoted(typ Type, c *csvOut) bool {
	alphabet, ok := alphabets[typ]
	return ok && !strings.ContainsRune(alphabet, rune(c.delim)) &&
		(c.null == "" || strings.Trim(c.null, alphabet) != "")
}

// TableInfo describes a compiled table: its name and its columns in order.
type TableInfo struct {
	Name    string
	Columns []ColumnInfo
}

// ColumnInfo is one column of a TableInfo. Type is the column's effective
// type: "int" for ordinal columns, "string" for lineage columns.
type ColumnInfo struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
}

// Tables describes the compiled tables in config order.
func (m *Mapping) Tables() []TableInfo {
	out := make([]TableInfo, len(m.tables))
	for i, t := range m.tables {
		cols := make([]ColumnInfo, len(t.cols))
		for j, c := range t.cols {
			cols[j] = ColumnInfo{Name: c.name, Type: c.typ}
		}
		out[i] = TableInfo{Name: t.name, Columns: cols}
	}
	return out
}

// TableIndex returns the index of the table called name, or -1.
func (m *Mapping) TableIndex(name string) int {
	for i, t := range m.tables {
		if t.name == name {
			return i
		}
	}
	return -1
}

// Header returns the header line of table i (column names as CSV fields,
// ending in "\n"), whether or not the [csv] header option is set. The caller
// must not modify it.
func (m *Mapping) Header(i int) []byte { return m.tables[i].header }

// CSV returns the [csv] options the mapping was compiled with (Delimiter
// resolved to ',' when it was zero).
func (m *Mapping) CSV() CSV {
	return CSV{Delimiter: m.csv.delim, Header: m.header, Null: m.csv.null}
}

func (t *table) buildHeader(c *csvOut) {
	var b []byte
	for i, col := range t.cols {
		if i > 0 {
			b = append(b, c.delim)
		}
		b = c.appendStringField(b, col.name)
	}
	t.header = append(b, '\n')
}
