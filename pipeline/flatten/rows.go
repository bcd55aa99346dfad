package flatten

import "strconv"

// Lineage is where an event came from, for the partition, offset and
// event_type columns. An empty value is written as the null marker.
type Lineage struct {
	EventType string
	Partition string
	Offset    string
}

// RejectError says which column of which table rejects an event.
type RejectError struct {
	Table  string
	Column string
	Reason string // e.g. `1.5 is not an int`, `required value is missing`
}

func (e *RejectError) Error() string {
	return "table " + e.Table + " column " + e.Column + ": " + e.Reason
}

// maxLevels bounds the nesting of [*] in one table.
const maxLevels = 16

// AppendRows appends the CSV rows (no header) of table ti for the event to
// dst and returns the extended buffer and the number of rows; zero rows is
// not an error. Rows follow docs/mapping.md: array order, outer array first;
// fields quoted only when needed; "\n" line ends. If a column rejects the
// event, dst is returned unchanged with a *RejectError. It does not
// allocate beyond growing dst.
func (m *Mapping) AppendRows(dst []byte, ti int, d *Doc, lin Lineage) ([]byte, int, error) {
	w := rowWriter{m: m, t: &m.tables[ti], d: d, lin: lin, dst: dst}
	if err := w.explode(0); err != nil {
		return dst, 0, err
	}
	return w.dst, w.rows, nil
}

// Validate reports whether any column of any table rejects the event: the
// first *RejectError that AppendRows would return for some table, or nil.
// It runs the very walk of AppendRows, without writing the rows.
func (m *Mapping) Validate(d *Doc) error {
	for ti := range m.tables {
		w := rowWriter{m: m, t: &m.tables[ti], d: d, dst: d.scratch[:0], dry: true}
		err := w.explode(0)
		d.scratch = w.dst[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// rowWriter walks one table's array chain over one event.
type rowWriter struct {
	m    *Mapping
	t    *table
	d    *Doc
	lin  Lineage
	dst  []byte
	rows int
	dry  bool // validate only: typed values go to dst and are dropped
	// elems[k] is the current element of level k (elems[0] = the event),
	// ords[k] its index in its array.
	elems [maxLevels + 1]int32
	ords  [maxLevels + 1]int
}

// explode resolves the columns of level k for the current element, then
// writes a row (deepest level) or iterates the array of level k+1.
func (w *rowWriter) explode(k int) error {
	w.resolve(k)
	if k == len(w.t.levels) {
		return w.row()
	}
	tape := w.d.tape
	arr := w.d.find(w.elems[k], w.t.levels[k])
	if arr < 0 || tape[arr].kind != KindArray {
		return nil // zero rows
	}
	j := arr + 1
	for e := range int(tape[arr].n) {
		w.elems[k+1], w.ords[k+1] = j, e
		if err := w.explode(k + 1); err != nil {
			return err
		}
		j = int32(tape[j].next)
	}
	return nil
}

// resolve looks up the values of the event columns of level k, once per
// element rather than once per row.
func (w *rowWriter) resolve(k int) {
	if k == 0 {
		if len(w.d.cols) < len(w.t.cols) {
			w.d.cols = make([]colState, len(w.t.cols))
		}
		w.d.cache = w.d.cache[:0]
	}
	for _, ci := range w.t.byLevel[k] {
		w.d.cols[ci] = colState{node: w.d.find(w.elems[k], w.t.cols[ci].rest)}
	}
}

// colState is a column's value for the current element of its level. The
// field of a column above the deepest level is the same on every row of the
// element: it is rendered (or validated) once and then copied from the
// Doc's cache.
type colState struct {
	node       int32 // value node, or missing
	done       bool  // rendered (or validated) for the current element
	null       bool
	start, end int32 // the rendered field in Doc.cache
}

// row writes one row from the resolved values.
func (w *rowWriter) row() error {
	csv := &w.m.csv
	deepest := len(w.t.levels)
	for ci := range w.t.cols {
		c := &w.t.cols[ci]
		if ci > 0 && !w.dry {
			w.dst = append(w.dst, csv.delim)
		}
		cached := c.source == SourceEvent && c.level < deepest
		if st := &w.d.cols[ci]; cached && st.done {
			w.copyField(st)
			continue
		}
		start := len(w.dst)
		null, reason := w.field(c, ci)
		switch {
		case reason != "":
			return &RejectError{Table: w.t.name, Column: c.name, Reason: reason}
		case w.dry:
			w.dst = w.dst[:0]
		case null:
			w.dst = append(w.dst, csv.null...)
		case !c.plain:
			w.dst = csv.finishField(w.dst, start)
		}
		if cached {
			w.cacheField(&w.d.cols[ci], start, null)
		}
	}
	if !w.dry {
		w.dst = append(w.dst, '\n')
	}
	w.rows++
	return nil
}

func (w *rowWriter) cacheField(st *colState, start int, null bool) {
	st.done, st.null = true, null
	if !w.dry && !null {
		st.start = int32(len(w.d.cache))
		w.d.cache = append(w.d.cache, w.dst[start:]...)
		st.end = int32(len(w.d.cache))
	}
}

func (w *rowWriter) copyField(st *colState) {
	switch {
	case w.dry:
	case st.null:
		w.dst = append(w.dst, w.m.csv.null...)
	default:
		w.dst = append(w.dst, w.d.cache[st.start:st.end]...)
	}
}

// field writes the value of column ci unquoted, or reports it as null
// (missing) or rejected.
func (w *rowWriter) field(c *column, ci int) (null bool, reason string) {
	switch c.source {
	case SourceEvent:
		v := w.d.cols[ci].node
		if v >= 0 && w.d.tape[v].kind != KindNull {
			w.dst, reason = w.d.appendTyped(w.dst, v, c.typ, w.dry)
			return false, reason
		}
		switch {
		case !c.required:
			return true, ""
		case v < 0:
			return true, "required value is missing"
		}
		return true, "required value is null"
	case SourceOrdinal:
		w.dst = strconv.AppendInt(w.dst, int64(w.ords[c.level]), 10)
		return false, ""
	}
	s := w.lineage(c.source)
	w.dst = append(w.dst, s...)
	return s == "", ""
}

func (w *rowWriter) lineage(src Source) string {
	switch src {
	case SourcePartition:
		return w.lin.Partition
	case SourceOffset:
		return w.lin.Offset
	}
	return w.lin.EventType
}
