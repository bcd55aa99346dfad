package load

import (
	"fmt"
	"strings"

	"materializer/conf"
	"materializer/pipeline/flatten"
	"materializer/pipeline/notify"
)

// The loader's own tables.
const (
	loadedFiles = conf.LoadedFilesTable
	failedFiles = conf.FailedFilesTable
)

// csvDialect is the [csv] section every file is written with.
type csvDialect struct {
	Delimiter byte
	Null      string
}

// Schema is what the loader makes of the configuration: per event type its
// tables, their key and ordering columns, and the SQL types PostgreSQL
// gives them (those of `materializer ddl -dialect postgres`).
type Schema struct {
	Name       string // load.schema
	History    bool
	EventTypes []*EventType
}

// EventType is one configured event type as the loader sees it.
type EventType struct {
	Name     string
	Index    int
	Ordering string // conf ordering: number, string, timestamp, arrival
	Tables   []*Table
	Rejected Table  // {event_type}_rejected
	Versions string // {event_type}_versions
	// KeyTypes are the SQL types of the key columns, in partition key order.
	KeyTypes []string
}

// Table is one configured table.
type Table struct {
	Name    string
	Index   int // across all event types: names its staging table
	Columns []Column
	Keys    []int // column index of each partition key path, in key order
	Order   int   // column index of the ordering column; -1 for rejected
	OneRow  bool  // no [*] column: one row per key, a primary key
	// File is the columns a file of this table announces in its notice.
	File []notify.Column
	et   *EventType
}

// Column is one column with its PostgreSQL type as format_type prints it.
type Column struct {
	Name string
	Type string
}

// pgTypes maps the types of `materializer ddl -dialect postgres` to
// format_type's spelling, which is how existing tables are compared.
var pgTypes = map[string]string{
	"TEXT": "text", "BIGINT": "bigint", "NUMERIC": "numeric", "BOOLEAN": "boolean",
	"TIMESTAMP(6)": "timestamp(6) without time zone", "JSONB": "jsonb",
}

// NewSchema compiles a validated config (conf.ForLoad).
func NewSchema(cfg *conf.Config) (*Schema, error) {
	s := &Schema{Name: cfg.Load.Schema, History: cfg.Load.History}
	n := 0
	for i := range cfg.EventTypes {
		et, err := newEventType(&cfg.EventTypes[i], i, &n)
		if err != nil {
			return nil, err
		}
		s.EventTypes = append(s.EventTypes, et)
	}
	return s, nil
}

func newEventType(c *conf.EventType, index int, n *int) (*EventType, error) {
	sqlTables, err := flatten.Tables(flatten.DialectPostgres, c.Name, c.TableSpecs())
	if err != nil {
		return nil, fmt.Errorf("load: event type %s: %w", c.Name, err)
	}
	m, err := flatten.Compile(c.TableSpecs(), flatten.CSV{})
	if err != nil {
		return nil, fmt.Errorf("load: event type %s: %w", c.Name, err)
	}
	et := &EventType{Name: c.Name, Index: index, Ordering: c.Ordering, Versions: conf.VersionsTable(c.Name)}
	for ti, info := range m.Tables() {
		t, err := newTable(c, &c.Tables[ti], sqlTables[2*ti], *n)
		if err != nil {
			return nil, err
		}
		for _, col := range info.Columns {
			t.File = append(t.File, notify.Column{Name: col.Name, Type: string(col.Type)})
		}
		t.et = et
		et.Tables = append(et.Tables, t)
		*n++
	}
	rej := sqlTables[len(sqlTables)-1]
	et.Rejected = Table{Name: rej.Name, Columns: columns(rej), Order: -1, et: et}
	for _, name := range flatten.RejectedColumns() {
		et.Rejected.File = append(et.Rejected.File, notify.Column{Name: name, Type: string(flatten.TypeString)})
	}
	if len(et.Tables) > 0 {
		for _, k := range et.Tables[0].Keys {
			et.KeyTypes = append(et.KeyTypes, et.Tables[0].Columns[k].Type)
		}
	}
	return et, nil
}

func columns(t flatten.SQLTable) []Column {
	out := make([]Column, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = Column{Name: c.Name, Type: pgTypes[c.Type]}
	}
	return out
}

// newTable finds the key and ordering columns by path (conf checks that
// they exist: `materializer check` reports what is missing).
func newTable(et *conf.EventType, c *conf.Table, sql flatten.SQLTable, index int) (*Table, error) {
	t := &Table{Name: c.Name, Index: index, Columns: columns(sql), Order: -1, OneRow: true}
	for _, col := range c.Columns {
		if p, err := flatten.ParsePath(col.Path); err == nil && p.Explodes() {
			t.OneRow = false
		}
	}
	for _, k := range et.PartitionKey {
		i := columnByPath(c, k)
		if i < 0 {
			return nil, fmt.Errorf("load: table %s has no column for the partition key path %q", c.Name, k)
		}
		t.Keys = append(t.Keys, i)
	}
	for i, col := range c.Columns {
		if et.Ordering == conf.OrderingArrival && col.Source == string(flatten.SourceOffset) {
			t.Order = i
			break
		}
	}
	if et.Ordering != conf.OrderingArrival {
		t.Order = columnByPath(c, et.OrderingKey)
	}
	if t.Order < 0 {
		return nil, fmt.Errorf("load: table %s has no column for the ordering of event type %s", c.Name, et.Name)
	}
	return t, nil
}

// columnByPath is the first event column whose path equals path.
func columnByPath(t *conf.Table, path string) int {
	want, err := flatten.ParsePath(path)
	if err != nil {
		return -1
	}
	for i, c := range t.Columns {
		if p, err := flatten.ParsePath(c.Path); err == nil && c.Source == "" && p.String() == want.String() {
			return i
		}
	}
	return -1
}

// ident quotes an SQL identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal quotes an SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// q is the schema-qualified, quoted name of a table of the loader.
func (s *Schema) q(table string) string { return ident(s.Name) + "." + ident(table) }

// ordType is the SQL type ordering values of an ordering compare as:
// numeric, text in byte order, or instants.
func ordType(ordering string) string {
	switch ordering {
	case conf.OrderingNumber:
		return "numeric"
	case conf.OrderingTimestamp:
		return "timestamptz"
	}
	return `text COLLATE "C"`
}

// EventType returns the event type called name, or nil.
func (s *Schema) EventType(name string) *EventType {
	for _, et := range s.EventTypes {
		if et.Name == name {
			return et
		}
	}
	return nil
}

// Table returns the table called name, or nil.
func (et *EventType) Table(name string) *Table {
	for _, t := range et.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// columnList is the quoted names of cols, comma-separated, each prefixed.
func columnList(cols []Column, prefix string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = prefix + ident(c.Name)
	}
	return strings.Join(names, ", ")
}
