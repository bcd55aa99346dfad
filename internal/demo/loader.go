package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/pipeline"
	"materializer/pipeline/blobstore"
	"materializer/pipeline/load"
)

// demoLoader is `materializer load` beside the pipeline (demo -load): the
// loader in this process, loading into a throwaway PostgreSQL cluster.
type demoLoader struct {
	pg     *postgres
	l      *load.Loader
	cancel context.CancelFunc
	done   chan error
}

// startPostgresFor starts the cluster and writes its DSN file; without
// PostgreSQL the demo runs without the loader and says why.
func (d *demo) startPostgresFor() (dsnFile string, err error) {
	pg, err := startPostgres(context.Background())
	if errors.Is(err, errNoPostgres) {
		fmt.Fprintf(d.Out, "demo -load: %v; running without the loader\n", err)
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("demo -load: %w", err)
	}
	d.loader = &demoLoader{pg: pg}
	dsnFile = filepath.Join(d.Dir, "pg.dsn")
	return dsnFile, os.WriteFile(dsnFile, []byte(pg.DSN()+"\n"), 0o600)
}

// runLoader starts the loader on the effective config.
func (d *demo) runLoader(log zerolog.Logger) error {
	if d.loader == nil {
		return nil
	}
	cfg, err := conf.Load(d.cfgPath, conf.ForLoad)
	if err != nil {
		return fmt.Errorf("the demo's config does not validate for the loader: %w", err)
	}
	store, err := blobstore.Open(context.Background(), cfg.Storage.URL, pipeline.StoreOptions(cfg.Storage, log))
	if err != nil {
		return err
	}
	l, err := load.New(load.Options{Config: cfg, DSN: d.loader.pg.DSN(), Store: store, Logger: log,
		Registerer: d.Host.Registry(), Now: time.Now})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.loader.l, d.loader.cancel, d.loader.done = l, cancel, make(chan error, 1)
	go func() { d.loader.done <- l.Run(ctx) }()
	return nil
}

// stopLoader stops the loader and its cluster.
func (d *demo) stopLoader() {
	if d.loader == nil {
		return
	}
	if d.loader.cancel != nil {
		d.loader.cancel()
		if err := <-d.loader.done; err != nil {
			fmt.Fprintf(d.Err, "materializer demo: loader: %v\n", err)
		}
	}
	d.loader.pg.stop()
}

// loaderLine is the banner's line about the loader.
func (d *demo) loaderLine() string {
	if d.loader == nil {
		return fmt.Sprintf("  loader    into your PostgreSQL: set [load] dsn_file in %s, then %s load -config %s\n"+
			"            (or %s demo -load: a throwaway PostgreSQL cluster and the loader in this process; docs/loader.md)\n",
			d.show(d.cfgPath), d.Self, d.show(d.cfgPath), d.Self)
	}
	return fmt.Sprintf("  loader    PostgreSQL (throwaway, removed at the end) port %d, schema %s:\n"+
		"            psql -h 127.0.0.1 -p %d -U postgres -c 'SELECT * FROM %s.article LIMIT 5'\n",
		d.loader.pg.port, d.cfg.Load.Schema, d.loader.pg.port, d.cfg.Load.Schema)
}

// loaderSummary is the summary line's part about the loader.
func (d *demo) loaderSummary() string {
	if d.loader == nil || d.loader.l == nil {
		return ""
	}
	st := d.loader.l.Status()
	return " | loaded " + strconv.FormatInt(st.FilesLoaded, 10) + " files, " + strconv.FormatInt(st.RowsMerged, 10) + " rows merged"
}

// waitLoaded waits until the loader has acked every notice.
func (d *demo) waitLoaded(ctx context.Context, limit time.Duration) {
	if d.loader == nil || d.loader.l == nil {
		return
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st := d.loader.l.Status(); st.NoticesPending == 0 && st.LastLoadedAt != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
