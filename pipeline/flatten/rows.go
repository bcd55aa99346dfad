package flatten

import (
	"errors"
	"math"
	"strconv"
)

// Lineage is where an event came from, for the partition, offset and
// event_type columns. An empty value is written as the null marker.
type Lineage struct {
	EventType string
	Partition string
	Offset    string
}

// RejectError says which column of which table rejects an event.
type RejectError struct {
	Table    string
	Column   string
	Reason   string // e.g. `1.5 is not an int`, `required value is missing`
	Required bool   // a required value is missing or null (else the value is of the wrong type)
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
//
// The rows count against the mapping's Limits together with the rows of
// the tables appended before for the same Doc (since its Parse), so an
// event's tables appended one after another are held to the event's
// limits. A limit is checked before the memory that would exceed it is
// taken; the error is then a *LimitError and dst comes back unchanged.
func (m *Mapping) AppendRows(dst []byte, ti int, d *Doc, lin Lineage) ([]byte, int, error) {
	w := rowWriter{m: m, t: &m.tables[ti], d: d, lin: lin, dst: dst, budget: m.limits.budgetFor(d.used)}
	if err := w.explode(0); err != nil {
		return dst, 0, err
	}
	d.used.rows += w.rows
	d.used.bytes += w.out
	return w.dst, w.rows, nil
}

// Validate reports whether the event is accepted: the first *RejectError
// that AppendRows would return for some table, or the *LimitError of the
// event's rows of all tables together, or nil. It runs the very walk of
// AppendRows without keeping the rows: typed values are checked, strings
// only measured by an upper bound of their CSV size; only when a bound
// exceeds a limit are the fields rendered, one row at a time, to decide
// exactly.
func (m *Mapping) Validate(d *Doc) error {
	err := m.walk(d, modeDry)
	if err == errInexact {
		err = m.walk(d, modeMeasure)
	}
	return err
}

// walk runs every table's rows in a mode that keeps none of them.
func (m *Mapping) walk(d *Doc, mode writeMode) error {
	var used cost
	for ti := range m.tables {
		w := rowWriter{m: m, t: &m.tables[ti], d: d, dst: d.scratch[:0], mode: mode, budget: m.limits.budgetFor(used)}
		err := w.explode(0)
		d.scratch = w.dst[:0]
		if err != nil {
			return err
		}
		used.rows += w.rows
		used.bytes += w.out
	}
	return nil
}

// writeMode is what a rowWriter does with the rows.
type writeMode uint8

const (
	modeWrite   writeMode = iota // append them (AppendRows)
	modeDry                      // check the values, measure strings by a bound, write nothing
	modeMeasure                  // render each row, count its bytes, drop it
)

// errInexact: an upper bound of modeDry exceeds a limit; modeMeasure decides.
var errInexact = errors.New("flatten: bound exceeds a limit")

// rowWriter walks one table's array chain over one event.
type rowWriter struct {
	m      *Mapping
	t      *table
	d      *Doc
	lin    Lineage
	dst    []byte
	rows   int
	out    int // CSV bytes of the rows so far (upper bounds in modeDry)
	wide   int // modeDry: the widest typed field seen, quotes included
	mode   writeMode
	budget budget
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

// row writes one row from the resolved values, checking the limits before
// the row and before each field takes its memory.
func (w *rowWriter) row() error {
	if w.rows >= w.budget.rows {
		return &LimitError{Limit: LimitRows, Max: w.m.limits.Rows, Table: w.t.name}
	}
	if w.mode == modeDry {
		return w.dryRow()
	}
	csv := &w.m.csv
	deepest := len(w.t.levels)
	rowStart := len(w.dst)
	for ci := range w.t.cols {
		c := &w.t.cols[ci]
		if ci > 0 {
			w.dst = append(w.dst, csv.delim)
		}
		cached := c.source == SourceEvent && c.level < deepest
		if st := &w.d.cols[ci]; cached && st.done {
			if err := w.fits(c, int(st.end-st.start), len(w.dst)-rowStart); err != nil {
				return err
			}
			w.copyField(st)
			continue
		}
		start := len(w.dst)
		null, err := w.writeField(c, ci, start-rowStart)
		if err != nil {
			return err
		}
		if cached {
			w.cacheField(&w.d.cols[ci], start, null)
		}
	}
	w.dst = append(w.dst, '\n')
	size := len(w.dst) - rowStart
	if err := w.fits(nil, 0, size); err != nil {
		return err
	}
	w.out += size
	if w.mode == modeMeasure {
		w.dst = w.dst[:rowStart]
	}
	w.rows++
	return nil
}

// writeField writes the field of column ci at offset size of its row.
func (w *rowWriter) writeField(c *column, ci, size int) (null bool, err error) {
	csv := &w.m.csv
	start := len(w.dst)
	null, reason := w.field(c, ci, w.room(size))
	switch {
	case reason == overRoom:
		return false, w.exceeded(c, size)
	case reason != "":
		return false, &RejectError{Table: w.t.name, Column: c.name, Reason: reason, Required: null}
	case null:
		w.dst = append(w.dst, csv.null...)
	case !c.plain:
		w.dst = csv.finishField(w.dst, start)
	}
	if err := w.fits(c, len(w.dst)-start, size); err != nil {
		w.dst = w.dst[:start]
		return false, err
	}
	return null, nil
}

// dryRow checks one row's values without writing them. It measures no
// field: a string or JSON field is at most twice the event's size plus its
// quotes, a typed value (written to scratch and dropped) at most the widest
// one seen (w.wide), so a row is at most its columns times the wider of
// the two. Only when that bound exceeds a limit does modeMeasure decide.
func (w *rowWriter) dryRow() error {
	deepest := len(w.t.levels)
	for ci := range w.t.cols {
		c := &w.t.cols[ci]
		cached := c.source == SourceEvent && c.level < deepest
		st := &w.d.cols[ci]
		if cached && st.done {
			continue
		}
		null, reason := w.field(c, ci, w.budget.field)
		switch {
		case reason == overRoom: // measured exactly against the field limit alone
			return &LimitError{Limit: LimitFieldBytes, Max: w.m.limits.FieldBytes, Table: w.t.name, Column: c.name}
		case reason != "":
			return &RejectError{Table: w.t.name, Column: c.name, Reason: reason, Required: null}
		}
		w.wide = max(w.wide, len(w.dst)+2)
		w.dst = w.dst[:0]
		if cached {
			st.done, st.null = true, null
		}
	}
	field := max(2*len(w.d.src)+2, w.wide, len(w.m.csv.null))
	size := len(w.t.cols) * (field + 1)
	if field > w.budget.field || w.out+size > w.budget.bytes {
		return errInexact
	}
	w.out += size
	w.rows++
	return nil
}

// room is how many bytes the next field of a row, at offset size, may
// take; math.MaxInt is no limit.
func (w *rowWriter) room(size int) int {
	room := w.budget.field
	if w.budget.bytes != math.MaxInt {
		room = max(0, min(room, w.budget.bytes-w.out-size))
	}
	return room
}

// fits checks n more bytes (a field of column c, or c == nil: the row's
// end) at offset size of the row against the budget: nil or the
// *LimitError.
func (w *rowWriter) fits(c *column, n, size int) error {
	if (c == nil || n <= w.budget.field) && w.out+size+n <= w.budget.bytes {
		return nil
	}
	return w.overLimit(c, n)
}

func (w *rowWriter) overLimit(c *column, n int) error {
	if c != nil && n > w.budget.field {
		return &LimitError{Limit: LimitFieldBytes, Max: w.m.limits.FieldBytes, Table: w.t.name, Column: c.name}
	}
	return &LimitError{Limit: LimitOutputBytes, Max: w.m.limits.OutputBytes, Table: w.t.name}
}

// exceeded is the *LimitError of a value that is longer than room(size)
// before it is written: the field limit when that is what bounds the room.
func (w *rowWriter) exceeded(c *column, size int) error {
	if w.budget.field <= w.budget.bytes-w.out-size {
		return &LimitError{Limit: LimitFieldBytes, Max: w.m.limits.FieldBytes, Table: w.t.name, Column: c.name}
	}
	return &LimitError{Limit: LimitOutputBytes, Max: w.m.limits.OutputBytes, Table: w.t.name}
}

// cacheField keeps the field just written at dst[start:] for the other
// rows of its element.
func (w *rowWriter) cacheField(st *colState, start int, null bool) {
	st.done, st.null = true, null
	if !null {
		st.start = int32(len(w.d.cache))
		w.d.cache = append(w.d.cache, w.dst[start:]...)
		st.end = int32(len(w.d.cache))
	}
}

func (w *rowWriter) copyField(st *colState) {
	if st.null {
		w.dst = append(w.dst, w.m.csv.null...)
		return
	}
	w.dst = append(w.dst, w.d.cache[st.start:st.end]...)
}

// field writes the value of column ci unquoted, or reports it as null
// (missing) or rejected; a value that room cannot hold is
// reported as overRoom when that is known before it is written.
func (w *rowWriter) field(c *column, ci, room int) (null bool, reason string) {
	switch c.source {
	case SourceEvent:
		v := w.d.cols[ci].node
		if v >= 0 && w.d.tape[v].kind != KindNull {
			w.dst, reason = w.d.appendTyped(w.dst, v, c.typ, w.mode == modeDry, room)
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
