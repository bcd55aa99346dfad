package load

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"materializer/pipeline/notify"
)

// ErrNotParked: Replay was given an id that is not in
// materializer_failed_files.
var ErrNotParked = errors.New("load: no parked notice with this id")

// Replay loads a parked notice now (`materializer load -replay ID`): it
// fetches and checks the file and applies it in one transaction, which
// records it as loaded and removes it from materializer_failed_files. A
// file that still cannot be loaded stays parked, and the error says why.
// It is safe while a loader runs: both take the schema's advisory lock.
func (l *Loader) Replay(ctx context.Context, id string) (Result, error) {
	pool, err := l.newPool(ctx, l.opts.DSN)
	if err != nil {
		return Result{}, err
	}
	l.pool.Store(pool)
	defer pool.Close()
	if err := l.trySetup(ctx); err != nil {
		return Result{}, err
	}
	var body []byte
	err = pool.QueryRow(ctx, "SELECT notice::text FROM "+l.schema.q(failedFiles)+" WHERE id = $1", id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, fmt.Errorf("%w: %q (list them: SELECT id, reason FROM %s)", ErrNotParked, id, l.schema.q(failedFiles))
	}
	if err != nil {
		return Result{}, err
	}
	n, err := notify.ParseNotice(body)
	if err != nil {
		return Result{}, fmt.Errorf("load: the parked notice %s does not parse: %w", id, err)
	}
	f, err := fetch(ctx, l.opts.Store, n, l.opts.TempDir)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	c, err := pool.Acquire(ctx)
	if err != nil {
		return Result{}, err
	}
	defer c.Release()
	res, err := l.schema.apply(ctx, c.Conn(), l.csv, []*fetched{f})
	return Result{Files: int64(len(res.Loaded)), Rows: res.Rows + res.Rejected}, err
}

// Result is what Replay loaded.
type Result struct {
	Files int64
	Rows  int64
}
