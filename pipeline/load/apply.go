package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"materializer/internal/failpoint"
	"materializer/pipeline/notify"
)

// applied is what one transaction did.
type applied struct {
	Loaded   []string // notice ids recorded now
	Skipped  []string // notice ids recorded before: acked without loading
	Rows     int64    // main and correction rows merged
	Current  int64    // rows inserted into current-state tables
	Rejected int64    // rows appended to rejected tables
	History  int64    // rows appended to history tables
}

// fileError is a failure of one file of a batch (its index).
type fileError struct {
	index int
	err   error
}

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// apply loads files in one transaction: under the schema's advisory lock,
// it skips the notices already recorded, COPYs each file into its staging
// table (rejected files into their table), merges every event type, appends
// history, records the notice ids, and commits.
func (s *Schema) apply(ctx context.Context, db *pgx.Conn, csv csvDialect, files []*fetched) (applied, error) {
	var res applied
	tx, err := db.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockKey()); err != nil {
		return res, err
	}
	todo, err := s.unrecorded(ctx, tx, files, &res)
	if err != nil || len(todo) == 0 {
		return res, err
	}
	staged := map[*EventType][]*Table{}
	for i, f := range files {
		if !todo[i] {
			continue
		}
		t, rejected, n, err := s.stage(ctx, tx, csv, i, f)
		if err != nil {
			return res, &fileError{i, err}
		}
		res.Loaded = append(res.Loaded, f.notice.ID)
		if rejected {
			res.Rejected += n
		} else {
			res.Rows += n
			if !slices.Contains(staged[t.et], t) {
				staged[t.et] = append(staged[t.et], t)
			}
		}
	}
	if err := s.merge(ctx, tx, staged, &res); err != nil {
		return res, err
	}
	if err := s.record(ctx, tx, files, todo); err != nil {
		return res, err
	}
	failpoint.Inject(failpoint.LoadAfterCopy)
	return res, tx.Commit(ctx)
}

// unrecorded reports which files are not in loaded_files yet.
func (s *Schema) unrecorded(ctx context.Context, tx pgx.Tx, files []*fetched, res *applied) (map[int]bool, error) {
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = f.notice.ID
	}
	rows, err := tx.Query(ctx, "SELECT id FROM "+s.q(loadedFiles)+" WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, err
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	todo := map[int]bool{}
	for i, id := range ids {
		if slices.Contains(done, id) || slices.Contains(ids[:i], id) {
			res.Skipped = append(res.Skipped, id)
			continue
		}
		todo[i] = true
	}
	return todo, nil
}

// stage COPYs one file: into its table's staging table, or straight into
// the rejected table. It returns the table and the rows copied.
func (s *Schema) stage(ctx context.Context, tx pgx.Tx, csv csvDialect, i int, f *fetched) (*Table, bool, int64, error) {
	t, rejected, err := s.tableOf(f.notice)
	if err != nil {
		return nil, false, 0, err
	}
	n := f.notice
	if _, err := tx.Exec(ctx, "SELECT set_config('materializer.file', $1, true)", strconv.Itoa(i)); err != nil {
		return nil, false, 0, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+filesTable+" VALUES ($1, $2, $3, $4, $5, $6)",
		i, n.ID, n.Kind, n.Writer, n.Partition, int64(n.Seq)); err != nil {
		return nil, false, 0, err
	}
	r, err := f.csv()
	if err != nil {
		return nil, false, 0, err
	}
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, &badReader{r: r, url: n.URL, beat: f.beat}, s.CopySQL(t, rejected, n.Header, csv.Delimiter, csv.Null))
	if err != nil {
		return nil, false, 0, copyError(n, t, err)
	}
	if tag.RowsAffected() != n.Rows {
		return nil, false, 0, badFile("%s: %d rows, the notice says %d", n.URL, tag.RowsAffected(), n.Rows)
	}
	return t, rejected, tag.RowsAffected(), nil
}

// tableOf is the table a notice's file goes to, after checking that the
// file's columns are the table's.
func (s *Schema) tableOf(n notify.Notice) (*Table, bool, error) {
	et := s.EventType(n.EventType)
	if et == nil {
		return nil, false, badFile("%s: event type %q is not configured", n.ID, n.EventType)
	}
	t, rejected := &et.Rejected, n.Kind == "rejected"
	switch {
	case rejected:
	case n.Kind != "main" && n.Kind != "correction":
		return nil, false, badFile("%s: unknown kind %q", n.ID, n.Kind)
	case et.Table(n.Table) == nil:
		return nil, false, badFile("%s: table %q is not configured for event type %s", n.ID, n.Table, n.EventType)
	default:
		t = et.Table(n.Table)
	}
	if !slices.Equal(n.Columns, t.File) {
		return nil, false, badFile("%s: the file's columns (%s) are not those of table %s.%s (%s)",
			n.ID, describeFile(n.Columns), s.Name, t.Name, describeFile(t.File))
	}
	return t, rejected, nil
}

func describeFile(cols []notify.Column) string {
	out := make([]Column, len(cols))
	for i, c := range cols {
		out[i] = Column{c.Name, c.Type}
	}
	return describe(out)
}

// copyError names the file; data PostgreSQL refuses (SQLSTATE class 22,
// data exception: a bad value, a header that does not match) is
// ErrBadFile, anything else is the database's.
func copyError(n notify.Notice, t *Table, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code[:2] == "22" || pe.Code[:2] == "23") {
		return badFile("%s into table %s: %s (%s)", n.URL, t.Name, pe.Message, pe.Where)
	}
	return fmt.Errorf("load: copy %s into table %s: %w", n.URL, t.Name, err)
}

// badReader marks read errors (a broken gzip stream) as ErrBadFile.
type badReader struct {
	r    io.Reader
	url  string
	beat func()
}

func (b *badReader) Read(p []byte) (int, error) {
	if b.beat != nil {
		b.beat()
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = badFile("%s: %v", b.url, err)
	}
	return n, err
}

// merge runs the merge of each staged event type in one round trip, and
// appends history.
func (s *Schema) merge(ctx context.Context, tx pgx.Tx, staged map[*EventType][]*Table, res *applied) error {
	batch := &pgx.Batch{}
	var counts []*int64
	for _, et := range s.EventTypes {
		tables := staged[et]
		if len(tables) == 0 {
			continue
		}
		stmts := s.MergeSQL(et, tables)
		for i, stmt := range stmts {
			var c *int64
			if i >= len(stmts)-len(tables) {
				c = &res.Current
			}
			batch.Queue(stmt)
			counts = append(counts, c)
		}
		for _, t := range tables {
			if s.History {
				batch.Queue(s.HistorySQL(t))
				counts = append(counts, &res.History)
			}
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, batch)
	for _, c := range counts {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return fmt.Errorf("load: merge: %w", err)
		}
		if c != nil {
			*c += tag.RowsAffected()
		}
	}
	return br.Close()
}

// record inserts the loaded notices into loaded_files.
func (s *Schema) record(ctx context.Context, tx pgx.Tx, files []*fetched, todo map[int]bool) error {
	var ids, urls, sums []string
	var rows []int64
	for i, f := range files {
		if todo[i] {
			ids, urls, sums = append(ids, f.notice.ID), append(urls, f.notice.URL), append(sums, f.notice.SHA256)
			rows = append(rows, f.notice.Rows)
		}
	}
	_, err := tx.Exec(ctx, "INSERT INTO "+s.q(loadedFiles)+" (id, url, sha256, rows, loaded_at) "+
		"SELECT *, $5::timestamptz FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])",
		ids, urls, sums, rows, time.Now())
	if err == nil { // a replayed notice leaves the parked ones
		_, err = tx.Exec(ctx, "DELETE FROM "+s.q(failedFiles)+" WHERE id = ANY($1)", ids)
	}
	return err
}
