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
	dl, ok := dialects[dialectName]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrDialect, dialectName)
	}
	m, err := Compile(tables, CSV{})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	var bad []string
	ident := func(name string) string {
		q, err := dl.quote(name)
		if err != nil && !slices.Contains(bad, err.Error()) {
			bad = append(bad, err.Error())
		}
		return q
	}
	for _, t := range m.tables {
		for _, name := range []string{t.name, t.name + "_correction"} {
			cols := make([][2]string, len(t.cols))
			for i, c := range t.cols {
				q := ident(c.name)
				typ := dl.columnType(c)
				if dl.upper && c.source == SourceEvent && c.typ == TypeJSON {
					typ += " CHECK (" + q + " IS JSON)"
				}
				cols[i] = [2]string{q, typ}
			}
			writeCreate(&b, ident(name), cols)
		}
	}
	cols := make([][2]string, len(rejectedColumns))
	for i, name := range rejectedColumns {
		cols[i] = [2]string{ident(name), dl.rejected[i]}
	}
	writeCreate(&b, ident(strings.ReplaceAll(eventType, ".", "_")+"_rejected"), cols)
	if len(bad) > 0 {
		return "", fmt.Errorf("flatten: %s: %s", dialectName, strings.Join(bad, "; "))
	}
	return b.String(), nil
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
