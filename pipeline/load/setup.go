package load

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"materializer/conf"
)

// ErrTablesDiffer: a table of the loader exists with other columns than
// the configuration gives it. Start-up refuses to load into it.
var ErrTablesDiffer = errors.New("load: tables differ from the configuration")

// wantTable is a table the loader needs: its columns and the statements
// that create it with its key.
type wantTable struct {
	name   string
	cols   []Column
	create []string
}

// History columns added to {table}_history.
var historyColumns = []Column{
	{"materializer_notice_id", "text"}, {"materializer_kind", "text"},
	{"materializer_partition", "text"}, {"materializer_seq", "bigint"},
}

// tables lists every table the loader needs, in creation order.
func (s *Schema) tables() []wantTable {
	var out []wantTable
	for _, et := range s.EventTypes {
		for _, t := range et.Tables {
			out = append(out, s.dataTable(t))
			if s.History {
				cols := append(append([]Column{}, t.Columns...), historyColumns...)
				out = append(out, s.plainTable(t.Name+"_history", cols))
			}
		}
		out = append(out, s.plainTable(et.Rejected.Name, et.Rejected.Columns), s.versionsTable(et))
	}
	out = append(out,
		s.keyedTable(conf.LoadedFilesTable, []Column{{"id", "text"}, {"url", "text"}, {"sha256", "text"},
			{"rows", "bigint"}, {"loaded_at", "timestamp with time zone"}}, "id"),
		s.keyedTable(conf.FailedFilesTable, []Column{{"id", "text"}, {"notice", "jsonb"}, {"reason", "text"},
			{"attempts", "integer"}, {"parked_at", "timestamp with time zone"}}, "id"))
	return out
}

func (s *Schema) plainTable(name string, cols []Column) wantTable {
	return wantTable{name: name, cols: cols, create: []string{createTable(s.q(name), cols, "")}}
}

func (s *Schema) keyedTable(name string, cols []Column, key string) wantTable {
	return wantTable{name: name, cols: cols, create: []string{createTable(s.q(name), cols, key)}}
}

// dataTable is a current-state table: a primary key on the key columns
// when it has one row per key, else an index on them.
func (s *Schema) dataTable(t *Table) wantTable {
	keys := columnList(t.keyColumns(), "")
	if t.OneRow {
		return s.keyedTable(t.Name, t.Columns, keys)
	}
	w := s.plainTable(t.Name, t.Columns)
	w.create = append(w.create, fmt.Sprintf("CREATE INDEX %s ON %s (%s)", ident(t.Name+"_key"), s.q(t.Name), keys))
	return w
}

func (s *Schema) versionsTable(et *EventType) wantTable {
	var cols []Column
	if len(et.Tables) > 0 {
		cols = et.Tables[0].keyColumns()
	}
	keys := columnList(cols, "")
	cols = append(cols, Column{"materializer_ordering", formatType(ordType(et.Ordering))},
		Column{"materializer_kind", "text"}, Column{"materializer_writer", "text"},
		Column{"materializer_notice_id", "text"}, Column{"materializer_loaded_at", "timestamp with time zone"})
	w := s.keyedTable(et.Versions, cols, keys)
	// The ordering compares in byte order when it is text.
	w.create[0] = strings.Replace(w.create[0], `"materializer_ordering" text`, `"materializer_ordering" text COLLATE "C"`, 1)
	return w
}

func (t *Table) keyColumns() []Column {
	out := make([]Column, len(t.Keys))
	for i, k := range t.Keys {
		out[i] = t.Columns[k]
	}
	return out
}

func formatType(sqlType string) string {
	switch sqlType {
	case "timestamptz":
		return "timestamp with time zone"
	case `text COLLATE "C"`:
		return "text"
	}
	return sqlType
}

func createTable(name string, cols []Column, primaryKey string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (", name)
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", ident(c.Name), c.Type)
	}
	if primaryKey != "" {
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", primaryKey)
	}
	b.WriteString(")")
	return b.String()
}

// Setup creates the schema and every missing table with its key, and
// compares the existing ones: ErrTablesDiffer names each table whose
// columns differ, with both column lists. It runs in one transaction under
// the loader's advisory lock, so two loaders starting at once agree.
func (s *Schema) Setup(ctx context.Context, db *pgx.Conn) (created []string, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockKey()); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+ident(s.Name)); err != nil {
		return nil, err
	}
	have, err := s.existing(ctx, tx)
	if err != nil {
		return nil, err
	}
	var differ []string
	for _, w := range s.tables() {
		cols, ok := have[w.name]
		if ok {
			if !sameColumns(cols, w.cols) {
				differ = append(differ, fmt.Sprintf("%s.%s has (%s), the configuration wants (%s)",
					s.Name, w.name, describe(cols), describe(w.cols)))
			}
			continue
		}
		for _, stmt := range w.create {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return nil, fmt.Errorf("load: create %s.%s: %w", s.Name, w.name, err)
			}
		}
		created = append(created, w.name)
	}
	if len(differ) > 0 {
		return nil, fmt.Errorf("%w: %s (drop or rename them, or change the configuration)", ErrTablesDiffer, strings.Join(differ, "; "))
	}
	return created, tx.Commit(ctx)
}

// existing reads the columns of the schema's tables.
func (s *Schema) existing(ctx context.Context, tx pgx.Tx) (map[string][]Column, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum`, s.Name)
	if err != nil {
		return nil, err
	}
	have := map[string][]Column{}
	var table string
	var col Column
	_, err = pgx.ForEachRow(rows, []any{&table, &col.Name, &col.Type}, func() error {
		have[table] = append(have[table], col)
		return nil
	})
	return have, err
}

func sameColumns(a, b []Column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func describe(cols []Column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.Name + " " + c.Type
	}
	return strings.Join(parts, ", ")
}

// lockKey is the advisory lock of the schema: one transaction of one
// loader at a time applies files to it.
func (s *Schema) lockKey() int64 {
	var h int64 = 0x6d6c6f6164 // "mload"
	for _, b := range []byte(s.Name) {
		h = h*31 + int64(b)
	}
	return h
}
