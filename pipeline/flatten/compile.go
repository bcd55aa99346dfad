package flatten

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Compile checks and compiles the tables of one event type with the [csv]
// options (a zero Delimiter means ','). The error, when not nil, is a
// Problems listing every problem found, in table and column order:
//
//   - a table: no tables at all; an empty, invalid or duplicate name; no columns;
//   - a column's name: empty, invalid (control characters, invalid UTF-8) or
//     a duplicate of another column of the table (compared case-insensitively,
//     since Redshift and unquoted Oracle identifiers fold case);
//   - path: not parseable; empty for an event column; not empty for a
//     partition/offset/event_type column; an ordinal path not ending in [*];
//     a [*] path not on the table's one array chain (the column that leaves
//     the chain is named, with the column that set the chain);
//   - type: unknown; not int for an ordinal column, not string for a lineage
//     column;
//   - source: unknown;
//   - required: set on an ordinal or lineage column (they are never missing);
//   - the csv delimiter and null marker (Table = -1).
func Compile(tables []TableSpec, csv CSV) (*Mapping, error) {
	var c compiler
	c.csv = c.csvOptions(csv)
	m := &Mapping{csv: c.csv, header: csv.Header}
	if len(tables) == 0 {
		c.add(-1, -1, "tables", "", "no tables: an event type needs at least one")
	}
	names := map[string]int{}
	for ti, ts := range tables {
		t := c.table(ti, ts)
		c.checkName(ti, -1, ts.Name)
		if prev, dup := names[ts.Name]; dup && ts.Name != "" {
			c.add(ti, -1, "name", ts.Name, fmt.Sprintf("is the name of table %d already", prev))
		}
		names[ts.Name] = ti
		t.buildHeader(&m.csv)
		m.tables = append(m.tables, t)
	}
	if len(c.problems) > 0 {
		return nil, c.problems
	}
	return m, nil
}

type compiler struct {
	problems Problems
	csv      csvOut
}

func (c *compiler) add(table, col int, field, value, msg string) {
	c.problems = append(c.problems, Problem{Table: table, Column: col, Field: field, Value: value, Msg: msg})
}

func (c *compiler) csvOptions(o CSV) csvOut {
	if o.Delimiter == 0 {
		o.Delimiter = ','
	}
	switch d := o.Delimiter; {
	case d == '"' || d == '\r' || d == '\n' || d >= utf8.RuneSelf:
		c.add(-1, -1, "csv.delimiter", string(rune(d)), "cannot be a delimiter: use an ASCII character other than '\"', CR and LF")
	}
	if strings.ContainsAny(o.Null, "\"\r\n"+string(rune(o.Delimiter))) || !utf8.ValidString(o.Null) {
		c.add(-1, -1, "csv.null", o.Null, "cannot be the null marker: it must not contain the delimiter, '\"', CR or LF")
	}
	return newCSVOut(o.Delimiter, o.Null)
}

// checkName reports an empty or unprintable table (col = -1) or column name.
func (c *compiler) checkName(ti, ci int, name string) {
	switch {
	case name == "":
		c.add(ti, ci, "name", name, "is empty: a name is required")
	case !utf8.ValidString(name):
		c.add(ti, ci, "name", name, "is not valid UTF-8")
	case strings.IndexFunc(name, isControl) >= 0:
		c.add(ti, ci, "name", name, "holds a control character")
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7F }

// table compiles one table, recording its problems.
func (c *compiler) table(ti int, ts TableSpec) table {
	t := table{name: ts.Name}
	if len(ts.Columns) == 0 {
		c.add(ti, -1, "columns", ts.Name, "has no columns: a table needs at least one")
	}
	lower := map[string]int{}
	var ch chain
	for ci, cs := range ts.Columns {
		c.checkName(ti, ci, cs.Name)
		key := strings.ToLower(cs.Name)
		if prev, dup := lower[key]; dup && cs.Name != "" {
			c.add(ti, ci, "name", cs.Name, fmt.Sprintf("duplicates column %d (%q); names are compared case-insensitively", prev, ts.Columns[prev].Name))
		} else {
			lower[key] = ci
		}
		col := c.column(ti, ci, cs)
		ch.add(c, ti, ci, col)
		t.cols = append(t.cols, col)
	}
	t.levels = splitLevels(ch.steps)
	t.byLevel = make([][]int, len(t.levels)+1)
	for ci, col := range t.cols {
		if col.source == SourceEvent && col.level < len(t.byLevel) {
			t.byLevel[col.level] = append(t.byLevel[col.level], ci)
		}
	}
	return t
}

// column compiles one column; its level and rest are set from its path.
func (c *compiler) column(ti, ci int, cs ColumnSpec) column {
	col := column{name: cs.Name, typ: cs.Type, source: cs.Source, required: cs.Required}
	switch cs.Source {
	case SourceEvent:
		c.eventPath(ti, ci, cs, &col)
		c.checkType(ti, ci, cs.Type, &col)
	case SourceOrdinal:
		c.ordinalPath(ti, ci, cs, &col)
		c.fixedType(ti, ci, cs, TypeInt, &col)
	case SourcePartition, SourceOffset, SourceEventType:
		if cs.Path != "" {
			c.add(ti, ci, "path", cs.Path, fmt.Sprintf("must be empty for source %q", cs.Source))
		}
		c.fixedType(ti, ci, cs, TypeString, &col)
	default:
		c.add(ti, ci, "source", string(cs.Source), "is not a source (empty for the event, ordinal, partition, offset, event_type)")
	}
	col.plain = (cs.Source == SourceEvent || cs.Source == SourceOrdinal) && neverQuoted(col.typ, &c.csv)
	if cs.Required && cs.Source != SourceEvent {
		c.add(ti, ci, "required", "true", fmt.Sprintf("is not allowed for source %q: such a column is never missing", cs.Source))
	}
	return col
}

func (c *compiler) eventPath(ti, ci int, cs ColumnSpec, col *column) {
	p, err := ParsePath(cs.Path)
	if err != nil {
		c.add(ti, ci, "path", cs.Path, pathMsg(err))
		return
	}
	col.path = p
	col.level = p.explodes()
	col.rest = p.steps[len(p.explodePrefix()):]
}

func (c *compiler) ordinalPath(ti, ci int, cs ColumnSpec, col *column) {
	p, err := ParsePath(cs.Path)
	switch {
	case err != nil:
		c.add(ti, ci, "path", cs.Path, pathMsg(err))
	case !p.endsInEach():
		c.add(ti, ci, "path", cs.Path, "must end in [*] for an ordinal column (it names the exploded array)")
	default:
		col.path = p
		col.level = p.explodes()
	}
}

// pathMsg turns a ParsePath error into a Problem message that reads after
// the quoted path.
func pathMsg(err error) string {
	if pe, ok := err.(*PathError); ok {
		if pe.Path == "" {
			return "is not a valid path: a path is required"
		}
		return fmt.Sprintf("is not a valid path: %s at byte %d", pe.Reason, pe.Offset)
	}
	return err.Error()
}

var knownTypes = []Type{TypeString, TypeInt, TypeDecimal, TypeBool, TypeTimestamp, TypeJSON}

func (c *compiler) checkType(ti, ci int, typ Type, col *column) {
	if typ == "" {
		col.typ = TypeString
		return
	}
	for _, k := range knownTypes {
		if typ == k {
			return
		}
	}
	c.add(ti, ci, "type", string(typ), "is not a type (string, int, decimal, bool, timestamp, json)")
}

// fixedType checks the type of an ordinal or lineage column, which can only
// be its own (or empty).
func (c *compiler) fixedType(ti, ci int, cs ColumnSpec, want Type, col *column) {
	col.typ = want
	if cs.Type != "" && cs.Type != want {
		c.add(ti, ci, "type", string(cs.Type), fmt.Sprintf("is not allowed for source %q: its type is %s", cs.Source, want))
	}
}

// chain is the array chain of a table being compiled: the longest explode
// prefix seen so far and the column that set it.
type chain struct {
	steps []step
	owner string
}

// add checks that the [*] steps of col's path lie on the chain, extending
// the chain when the path goes deeper.
func (ch *chain) add(c *compiler, ti, ci int, col column) {
	prefix := col.path.explodePrefix()
	switch {
	case col.level > maxLevels:
		c.add(ti, ci, "path", col.path.String(), fmt.Sprintf("has more than %d [*]", maxLevels))
	case prefix == nil || hasPrefix(ch.steps, prefix):
	case hasPrefix(prefix, ch.steps):
		ch.steps, ch.owner = prefix, col.name
	default:
		c.add(ti, ci, "path", col.path.String(), fmt.Sprintf(
			"is not on the array chain %s of column %q: all [*] columns of a table must lie on one array chain",
			Path{steps: ch.steps}, ch.owner))
	}
}

// splitLevels cuts an array chain at each [*].
func splitLevels(chain []step) [][]step {
	var levels [][]step
	start := 0
	for i, st := range chain {
		if st.kind == stepEach {
			levels = append(levels, chain[start:i])
			start = i + 1
		}
	}
	return levels
}
