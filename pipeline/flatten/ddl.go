package flatten

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Dialects DDL knows.
const (
	DialectPostgres = "postgres"
	DialectRedshift = "redshift"
	DialectOracle   = "oracle"
)

// ErrDialect is returned by DDL for a dialect it does not know.
var ErrDialect = errors.New("flatten: unknown SQL dialect (postgres, redshift, oracle)")

// dialect is how one warehouse spells tables.
type dialect struct {
	types    map[Type]string
	lineage  string   // partition, offset, event_type columns
	rejected []string // types of partition, offset, error, raw_event
	maxIdent int      // identifier length limit in bytes
	upper    bool     // Oracle: quoted upper-case names, so unquoted SQL finds them
}

var dialects = map[string]dialect{
	DialectPostgres: {
		types: map[Type]string{
			TypeString: "TEXT", TypeInt: "BIGINT", TypeDecimal: "NUMERIC", TypeBool: "BOOLEAN",
			TypeTimestamp: "TIMESTAMP(6)", TypeJSON: "JSONB",
		},
		lineage:  "TEXT",
		rejected: []string{"TEXT", "TEXT", "TEXT", "TEXT"},
		maxIdent: 63,
	},
	DialectRedshift: {
		types: map[Type]string{
			TypeString: "VARCHAR(65535)", TypeInt: "BIGINT", TypeDecimal: "DECIMAL(38,18)", TypeBool: "BOOLEAN",
			TypeTimestamp: "TIMESTAMP", TypeJSON: "SUPER",
		},
		lineage:  "VARCHAR(256)",
		rejected: []string{"VARCHAR(256)", "VARCHAR(256)", "VARCHAR(4096)", "VARCHAR(65535)"},
		maxIdent: 127,
	},
	DialectOracle: {
		types: map[Type]string{
			TypeString: "CLOB", TypeInt: "NUMBER(19)", TypeDecimal: "NUMBER", TypeBool: "BOOLEAN",
			TypeTimestamp: "TIMESTAMP(6)", TypeJSON: "CLOB",
		},
		lineage:  "VARCHAR2(256)",
		rejected: []string{"VARCHAR2(256)", "VARCHAR2(256)", "VARCHAR2(4000)", "CLOB"},
		maxIdent: 128,
		upper:    true,
	},
}

// SQLTable is one table DDL creates: its name and its columns with their
// SQL types, as the dialect spells them (unquoted; Oracle's upper-cased).
type SQLTable struct {
	Name    string
	Columns []SQLColumn
}

// SQLColumn is one column of an SQLTable.
type SQLColumn struct {
	Name string
	Type string
}

// DDL returns the CREATE TABLE statements of an event type's tables for a
// warehouse dialect (postgres, redshift, oracle): per table `{table}` for
// main rows and `{table}_correction` with the same columns, then
// `{event_type}_rejected` ('.' → '_') with partition, offset, error and
// raw_event (docs/files-and-notices.md). Columns keep config order, so the files load
// positionally. Identifiers are always quoted; Oracle's are upper-cased
// (quoted upper case is what unquoted Oracle SQL refers to). The error is
// ErrDialect, the Problems of Compile, or one naming an identifier the
// dialect cannot hold (too long, or a '"' in an Oracle name).
func DDL(dialectName, eventType string, tables []TableSpec) (string, error) {
	sqlTables, err := Tables(dialectName, eventType, tables)
	if err != nil {
		return "", err
	}
	dl := dialects[dialectName]
	var b strings.Builder
	for _, t := range sqlTables {
		cols := make([][2]string, len(t.Columns))
		for i, c := range t.Columns {
			cols[i] = [2]string{dl.mustQuote(c.Name), c.Type}
		}
		writeCreate(&b, dl.mustQuote(t.Name), cols)
	}
	return b.String(), nil
}

// Tables is what DDL writes, as values: per table `{table}` and
// `{table}_correction`, then `{event_type}_rejected`, each with its
// columns' SQL types (Oracle's JSON columns carry their IS JSON check).
func Tables(dialectName, eventType string, tables []TableSpec) ([]SQLTable, error) {
	dl, ok := dialects[dialectName]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrDialect, dialectName)
	}
	m, err := Compile(tables, CSV{})
	if err != nil {
		return nil, err
	}
	var out []SQLTable
	var bad []string
	name := func(n string) string {
		if _, err := dl.quote(n); err != nil && !slices.Contains(bad, err.Error()) {
			bad = append(bad, err.Error())
		}
		if dl.upper {
			return strings.ToUpper(n)
		}
		return n
	}
	for _, t := range m.tables {
		cols := make([]SQLColumn, len(t.cols))
		for i, c := range t.cols {
			typ := dl.columnType(c)
			if dl.upper && c.source == SourceEvent && c.typ == TypeJSON {
				q, _ := dl.quote(c.name)
				typ += " CHECK (" + q + " IS JSON)"
			}
			cols[i] = SQLColumn{Name: name(c.name), Type: typ}
		}
		out = append(out, SQLTable{Name: name(t.name), Columns: cols},
			SQLTable{Name: name(t.name + "_correction"), Columns: cols})
	}
	cols := make([]SQLColumn, len(rejectedColumns))
	for i, n := range rejectedColumns {
		cols[i] = SQLColumn{Name: name(n), Type: dl.rejected[i]}
	}
	out = append(out, SQLTable{Name: name(RejectedTableName(eventType)), Columns: cols})
	if len(bad) > 0 {
		return nil, fmt.Errorf("flatten: %s: %s", dialectName, strings.Join(bad, "; "))
	}
	return out, nil
}

// RejectedTableName is the warehouse table of an event type's rejected
// rows: `{event_type}_rejected` with '.' → '_'.
func RejectedTableName(eventType string) string {
	return strings.ReplaceAll(eventType, ".", "_") + "_rejected"
}

func (dl dialect) columnType(c column) string {
	switch c.source {
	case SourceEvent:
		return dl.types[c.typ]
	case SourceOrdinal:
		return dl.types[TypeInt]
	}
	return dl.lineage
}

// mustQuote quotes a name Tables has already checked.
func (dl dialect) mustQuote(name string) string {
	q, _ := dl.quote(name)
	return q
}

// quote returns name as a quoted identifier of the dialect.
func (dl dialect) quote(name string) (string, error) {
	if dl.upper {
		name = strings.ToUpper(name)
		if strings.Contains(name, `"`) {
			return "", fmt.Errorf("identifier %q holds '\"', which Oracle does not allow", name)
		}
	}
	if len(name) > dl.maxIdent {
		return "", fmt.Errorf("identifier %q is longer than %d bytes", name, dl.maxIdent)
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`, nil
}

func writeCreate(b *strings.Builder, table string, cols [][2]string) {
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "CREATE TABLE %s (\n", table)
	for i, c := range cols {
		sep := ","
		if i == len(cols)-1 {
			sep = ""
		}
		fmt.Fprintf(b, "  %s %s%s\n", c[0], c[1], sep)
	}
	b.WriteString(");\n")
}
