package load

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

type pgxConn = pgx.Conn

// Status is what GET /v1/status of the loader reports. Every key is
// snake_case.
type Status struct {
	Ready          bool       `json:"ready"`
	Schema         string     `json:"schema"`
	Durable        string     `json:"durable"`
	Stream         string     `json:"stream"`
	FilesLoaded    int64      `json:"files_loaded"`
	FilesSkipped   int64      `json:"files_skipped"` // recorded before: acked without loading
	Transactions   int64      `json:"transactions"`
	RowsMerged     int64      `json:"rows_merged"`  // main and correction rows merged
	RowsCurrent    int64      `json:"rows_current"` // of them, inserted into current-state tables
	RowsRejected   int64      `json:"rows_rejected"`
	RowsHistory    int64      `json:"rows_history"`
	NoticesPending uint64     `json:"notices_pending"`
	LagSeconds     float64    `json:"lag_seconds"` // age of the oldest notice not yet acked; 0 when none
	LastLoadedAt   *time.Time `json:"last_loaded_at"`
	LastError      *LastError `json:"last_error"`
	Retrying       []Retry    `json:"retrying"` // bad files waiting for their next attempt
	ParkedFiles    int64      `json:"parked_files"`
	Parked         []Parked   `json:"parked"` // the newest 20
}

// LastError is the most recent failure: an outage or a bad file.
type LastError struct {
	At     time.Time `json:"at"`
	Error  string    `json:"error"`
	Notice string    `json:"notice,omitempty"`
}

// Retry is a bad file that has failed and will be tried again.
type Retry struct {
	ID       string `json:"id"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
}

// Parked is a row of materializer_failed_files.
type Parked struct {
	ID       string    `json:"id"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	ParkedAt time.Time `json:"parked_at"`
}

// Status returns a copy of the loader's status.
func (l *Loader) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.Ready = l.ready.Load()
	st.Retrying = append([]Retry{}, l.st.Retrying...)
	st.Parked = append([]Parked{}, l.st.Parked...)
	return st
}

// outage records a failure that is not a file's: PostgreSQL, storage or
// NATS cannot be reached. Nothing is acked meanwhile.
func (l *Loader) outage(err error) {
	l.ready.Store(false)
	l.metrics.outages.Inc()
	l.setError(err, "")
	l.log.Warn().Err(err).Msg("outage: loading waits and retries")
}

// report records a failed attempt of a file.
func (l *Loader) report(id string, err error) {
	l.setError(err, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.st.Retrying {
		if l.st.Retrying[i].ID == id {
			l.st.Retrying[i].Attempts++
			l.st.Retrying[i].Error = err.Error()
			return
		}
	}
	l.st.Retrying = append(l.st.Retrying, Retry{ID: id, Attempts: 1, Error: err.Error()})
	l.metrics.retrying.Set(float64(len(l.st.Retrying)))
}

func (l *Loader) setError(err error, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.LastError = &LastError{At: l.opts.Now().UTC(), Error: err.Error(), Notice: id}
}

// forget drops a notice from the files being retried.
func (l *Loader) forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.attempts, id)
	for i := range l.st.Retrying {
		if l.st.Retrying[i].ID == id {
			l.st.Retrying = append(l.st.Retrying[:i], l.st.Retrying[i+1:]...)
			break
		}
	}
	l.metrics.retrying.Set(float64(len(l.st.Retrying)))
}

// loaded counts a committed transaction.
func (l *Loader) loaded(items []*item, res applied, took time.Duration) {
	for _, it := range items {
		l.forget(it.notice.ID)
	}
	m := l.metrics
	m.files.WithLabelValues("loaded").Add(float64(len(res.Loaded)))
	m.files.WithLabelValues("skipped").Add(float64(len(res.Skipped)))
	m.rows.WithLabelValues("merged").Add(float64(res.Rows))
	m.rows.WithLabelValues("current").Add(float64(res.Current))
	m.rows.WithLabelValues("rejected").Add(float64(res.Rejected))
	m.rows.WithLabelValues("history").Add(float64(res.History))
	m.txSeconds.Observe(took.Seconds())
	now := l.opts.Now().UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := &l.st
	st.FilesLoaded += int64(len(res.Loaded))
	st.FilesSkipped += int64(len(res.Skipped))
	st.Transactions++
	st.RowsMerged += res.Rows
	st.RowsCurrent += res.Current
	st.RowsRejected += res.Rejected
	st.RowsHistory += res.History
	st.LastLoadedAt = &now
	l.log.Debug().Int("files", len(res.Loaded)).Int("skipped", len(res.Skipped)).Int64("rows", res.Rows).
		Stringer("took", took).Msg("loaded")
}

// isDataError reports an error PostgreSQL raised about the data (SQLSTATE
// classes 22 and 23), which a batch's single files are tried alone for.
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code[:2] == "22" || pe.Code[:2] == "23")
}

// parkNotice records a notice in materializer_failed_files.
func (s *Schema) parkNotice(ctx context.Context, pool *pgxpool.Pool, id string, notice []byte, reason string, attempts int) error {
	_, err := pool.Exec(ctx, "INSERT INTO "+s.q(failedFiles)+" (id, notice, reason, attempts, parked_at) "+
		"VALUES ($1, $2::jsonb, $3, $4, now()) ON CONFLICT (id) DO UPDATE SET notice = EXCLUDED.notice, "+
		"reason = EXCLUDED.reason, attempts = "+s.q(failedFiles)+".attempts + EXCLUDED.attempts, parked_at = EXCLUDED.parked_at",
		id, string(notice), reason, attempts)
	return err
}

// refreshParked reads the parked count and the newest parked notices.
func (l *Loader) refreshParked(ctx context.Context) error {
	pool := l.pool.Load()
	var n int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+l.schema.q(failedFiles)).Scan(&n); err != nil {
		return err
	}
	rows, err := pool.Query(ctx, "SELECT id, reason, attempts, parked_at FROM "+l.schema.q(failedFiles)+
		" ORDER BY parked_at DESC, id LIMIT 20")
	if err != nil {
		return err
	}
	parked, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Parked])
	if err != nil {
		return err
	}
	l.metrics.parked.Set(float64(n))
	l.mu.Lock()
	l.st.ParkedFiles, l.st.Parked = n, parked
	l.mu.Unlock()
	return nil
}

// watchPending reads the consumer's pending notices and the age of the
// oldest one not acked every few seconds, for the status and the metrics.
func (l *Loader) watchPending(ctx context.Context, cons jetstream.Consumer, stream jetstream.Stream) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		l.pending(ctx, cons, stream)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *Loader) pending(ctx context.Context, cons jetstream.Consumer, stream jetstream.Stream) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	pending := info.NumPending + uint64(info.NumAckPending)
	lag := 0.0
	if pending > 0 {
		if m, err := stream.GetMsg(ctx, info.AckFloor.Stream+1); err == nil {
			lag = max(0, l.opts.Now().Sub(m.Time).Seconds())
		}
	}
	l.metrics.pending.Set(float64(pending))
	l.metrics.lag.Set(lag)
	l.mu.Lock()
	l.st.NoticesPending, l.st.LagSeconds = pending, lag
	l.mu.Unlock()
}
