package load

import (
	"fmt"
	"strings"
)

// The loader's temporary tables live in each connection's pg_temp and
// empty themselves at every commit or rollback (ON COMMIT DELETE ROWS):
//
//	materializer_files      the batch's files: m_file, id, kind, writer, partition, seq
//	materializer_stage_N    table N's rows as COPY typed them, with m_file (the file,
//	                        from the setting materializer.file) and m_row (file order)
//	materializer_win_E      per key of event type E, the version this batch makes the
//	                        key's winner (replaced: newer than the stored one) or adds
//	                        rows of (the stored winner itself)
const filesTable = "pg_temp.materializer_files"

func stageTable(t *Table) string { return fmt.Sprintf("pg_temp.materializer_stage_%d", t.Index) }

func winTable(et *EventType) string { return fmt.Sprintf("pg_temp.materializer_win_%d", et.Index) }

// TempTables are the statements that create the temporary tables of a
// connection.
func (s *Schema) TempTables() []string {
	out := []string{"CREATE TEMP TABLE IF NOT EXISTS " + filesTable +
		" (m_file integer PRIMARY KEY, id text, kind text, writer text, partition text, seq bigint) ON COMMIT DELETE ROWS"}
	for _, et := range s.EventTypes {
		for _, t := range et.Tables {
			out = append(out, fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s (%s, "+
				"m_file integer DEFAULT current_setting('materializer.file', true)::integer, m_row bigserial) ON COMMIT DELETE ROWS",
				stageTable(t), columnDefs(t.Columns)))
		}
		if len(et.Tables) == 0 {
			continue
		}
		keys := make([]string, len(et.KeyTypes))
		for i, typ := range et.KeyTypes {
			keys[i] = fmt.Sprintf("k%d %s", i+1, typ)
		}
		out = append(out, fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s (%s, ord %s, kind text, writer text, "+
			"m_file integer, replaced boolean) ON COMMIT DELETE ROWS", winTable(et), strings.Join(keys, ", "), ordType(et.Ordering)))
	}
	return out
}

func columnDefs(cols []Column) string {
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = ident(c.Name) + " " + c.Type
	}
	return strings.Join(defs, ", ")
}

// keyMatch is "a.key1 = b.k1 AND ..." for a table's key columns against
// the k1..kn of a win table (or another alias with the table's names).
func keyMatch(t *Table, a, b string, bNamed bool) string {
	conds := make([]string, len(t.Keys))
	for i, k := range t.Keys {
		right := fmt.Sprintf("%s.k%d", b, i+1)
		if bNamed {
			right = b + "." + ident(t.Columns[k].Name)
		}
		conds[i] = fmt.Sprintf("%s.%s = %s", a, ident(t.Columns[k].Name), right)
	}
	return strings.Join(conds, " AND ")
}

// ordExpr is the ordering value of a staged row as it compares.
func ordExpr(t *Table, alias string) string {
	return fmt.Sprintf("(%s.%s)::%s", alias, ident(t.Columns[t.Order].Name), ordType(t.et.Ordering))
}

// MergeSQL is the statements that merge the staged rows of the given
// tables (of one event type) into the current state, in order:
//
//  1. per key the best staged version (newest ordering value, a main file
//     before a correction file, the stored winner's own file stream, then
//     file and row order) that wins against the stored winner: newer, or
//     equal from a main file where a correction file's won, or the stored
//     winner itself (more of its tables' rows);
//  2. delete every table's rows of the keys whose winner changed;
//  3. record the new winners;
//  4. per staged table insert the winner's rows: of one file per key (the
//     first), and only where the key has no rows yet unless its winner
//     changed — what is loaded stays.
func (s *Schema) MergeSQL(et *EventType, staged []*Table) []string {
	var out []string
	for _, t := range staged { // temporary tables have no statistics of their own
		out = append(out, "ANALYZE "+stageTable(t))
	}
	out = append(out, s.winSQL(et, staged), "ANALYZE "+winTable(et))
	for _, t := range et.Tables {
		out = append(out, fmt.Sprintf("DELETE FROM %s t USING %s w WHERE w.replaced AND %s",
			s.q(t.Name), winTable(et), keyMatch(t, "t", "w", false)))
	}
	out = append(out, s.versionsSQL(et))
	for _, t := range staged {
		out = append(out, s.insertSQL(t))
	}
	return out
}

func (s *Schema) winSQL(et *EventType, staged []*Table) string {
	n := len(et.KeyTypes)
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("k%d", i+1)
	}
	parts := make([]string, len(staged))
	for i, t := range staged {
		sel := make([]string, n)
		for j, k := range t.Keys {
			sel[j] = fmt.Sprintf("s.%s AS k%d", ident(t.Columns[k].Name), j+1)
		}
		parts[i] = fmt.Sprintf("SELECT %s, %s AS ord, f.kind, f.writer, s.m_file, s.m_row FROM %s s JOIN %s f USING (m_file)",
			strings.Join(sel, ", "), ordExpr(t, "s"), stageTable(t), filesTable)
	}
	first := et.Tables[0]
	vmatch := make([]string, n)
	for i, k := range first.Keys {
		vmatch[i] = fmt.Sprintf("v.%s = c.k%d", ident(first.Columns[k].Name), i+1)
	}
	v1 := "v." + ident(first.Columns[first.Keys[0]].Name)
	newer := fmt.Sprintf("%s IS NULL OR c.ord > v.materializer_ordering OR "+
		"(c.ord = v.materializer_ordering AND c.kind = 'main' AND v.materializer_kind = 'correction')", v1)
	same := "c.ord = v.materializer_ordering AND c.kind = v.materializer_kind AND c.writer = v.materializer_writer"
	ck := "c." + strings.Join(ks, ", c.")
	return fmt.Sprintf(`INSERT INTO %[1]s (%[2]s, ord, kind, writer, m_file, replaced)
SELECT %[2]s, ord, kind, writer, m_file, replaced FROM (
  SELECT DISTINCT ON (%[3]s) %[3]s, c.ord, c.kind, c.writer, c.m_file,
    (%[4]s) AS replaced, (%[4]s OR %[5]s) AS wins
  FROM (%[6]s) c LEFT JOIN %[7]s v ON %[8]s
  ORDER BY %[3]s, c.ord DESC, (c.kind = 'main') DESC, (%[5]s) DESC NULLS LAST, c.m_file, c.m_row
) b WHERE wins`, winTable(et), strings.Join(ks, ", "), ck, newer, same,
		strings.Join(parts, "\n    UNION ALL "), s.q(et.Versions), strings.Join(vmatch, " AND "))
}

func (s *Schema) versionsSQL(et *EventType) string {
	first := et.Tables[0]
	keys := columnList(first.keyColumns(), "")
	ws := make([]string, len(first.Keys))
	for i := range ws {
		ws[i] = fmt.Sprintf("w.k%d", i+1)
	}
	return fmt.Sprintf(`INSERT INTO %s (%s, materializer_ordering, materializer_kind, materializer_writer, materializer_notice_id, materializer_loaded_at)
SELECT %s, w.ord, w.kind, w.writer, f.id, now() FROM %s w JOIN %s f USING (m_file) WHERE w.replaced
ON CONFLICT (%s) DO UPDATE SET materializer_ordering = EXCLUDED.materializer_ordering,
  materializer_kind = EXCLUDED.materializer_kind, materializer_writer = EXCLUDED.materializer_writer,
  materializer_notice_id = EXCLUDED.materializer_notice_id, materializer_loaded_at = EXCLUDED.materializer_loaded_at`,
		s.q(et.Versions), keys, strings.Join(ws, ", "), winTable(et), filesTable, keys)
}

func (s *Schema) insertSQL(t *Table) string {
	keys := columnList(t.keyColumns(), "s.")
	// One file per key: the first; in a table of one row per key, its first row.
	pick, window := "x.m_file = x.materializer_first", "min(s.m_file) OVER (PARTITION BY "+keys+")"
	if t.OneRow {
		pick, window = "x.materializer_first = 1", "row_number() OVER (PARTITION BY "+keys+" ORDER BY s.m_file, s.m_row)"
	}
	return fmt.Sprintf(`INSERT INTO %[1]s (%[2]s)
SELECT %[3]s FROM (
  SELECT s.*, w.replaced AS materializer_replaced, %[4]s AS materializer_first
  FROM %[5]s s JOIN %[6]s f USING (m_file)
  JOIN %[7]s w ON %[8]s AND %[9]s = w.ord AND f.kind = w.kind AND f.writer = w.writer
) x WHERE %[10]s AND (x.materializer_replaced OR NOT EXISTS (SELECT 1 FROM %[1]s t WHERE %[11]s))
ORDER BY x.m_file, x.m_row`,
		s.q(t.Name), columnList(t.Columns, ""), columnList(t.Columns, "x."), window, stageTable(t), filesTable,
		winTable(t.et), keyMatch(t, "s", "w", false), ordExpr(t, "s"), pick, keyMatch(t, "t", "x", true))
}

// HistorySQL appends every staged row of t to {table}_history with its
// file's notice id, kind, partition and seq, in file order.
func (s *Schema) HistorySQL(t *Table) string {
	return fmt.Sprintf(`INSERT INTO %s (%s, materializer_notice_id, materializer_kind, materializer_partition, materializer_seq)
SELECT %s, f.id, f.kind, f.partition, f.seq FROM %s s JOIN %s f USING (m_file) ORDER BY s.m_file, s.m_row`,
		s.q(t.Name+"_history"), columnList(t.Columns, ""), columnList(t.Columns, "s."), stageTable(t), filesTable)
}

// CopySQL is the COPY of one file into t's staging table, or straight
// into the rejected table (rejected rows are appended as they are).
func (s *Schema) CopySQL(t *Table, rejected bool, header bool, delimiter byte, null string) string {
	target := stageTable(t)
	if rejected {
		target = s.q(t.Name)
	}
	h := "false"
	if header {
		h = "match" // PostgreSQL checks the header names against the column list
	}
	return fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (FORMAT csv, HEADER %s, DELIMITER %s, NULL %s, ENCODING 'UTF8')",
		target, columnList(t.Columns, ""), h, literal(string(delimiter)), literal(null))
}
