package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// demoReport is what the demo prints: the banner, a summary line every
// -every, and the steps of a clean stop.
type demoReport struct {
	d      *demo
	start  time.Time
	notice jetstream.JetStream // counts notices; nil if NATS cannot be reached
	nc     *nats.Conn
}

func newDemoReport(d *demo) *demoReport {
	r := &demoReport{d: d, start: time.Now()}
	if nc, err := nats.Connect(d.natsURL, nats.Name("materializer-demo-report")); err == nil {
		r.nc = nc
		r.notice, _ = jetstream.New(nc)
	}
	return r
}

func (r *demoReport) close() {
	if r.nc != nil {
		r.nc.Close()
	}
}

// banner tells where everything is.
func (r *demoReport) banner() {
	d, c := r.d, r.d.cfg
	et, _ := findEventType(c, demoEventType)
	w := demoWindow(d.articles)
	p := &errWriter{w: d.io.out}
	p.printf("\nmaterializer demo: everything runs in this process; nothing else is needed.\n\n")
	p.printf("  Nakadi emulator  %s  event type %s, %d partitions\n", d.nk.URL(), demoEventType, demoPartitions)
	p.printf("  generator        %d events/s over %d articles, in bursts of ~%d updates per article with rising versions;\n",
		d.rate, d.articles, w.Step)
	p.printf("                   ~3%% out of order, 2%% duplicates, 1%% conflicting, 1%% malformed (seed %d)\n", d.seed)
	p.printf("  NATS JetStream   %s  stream %s, subjects %s.>\n", d.natsURL, c.Notify.Stream, c.Notify.SubjectPrefix)
	p.printf("  daemon           config %s (made from %s), data in %s\n", d.show(d.cfgPath), d.source, d.show(c.Daemon.DataDir))
	p.printf("                   session gap %s, session max %s; files roll at %s or %d rows\n",
		et.SessionGap, et.SessionMax, c.Storage.RollMaxAge, c.Storage.RollMaxRows)
	p.printf("\nWhere to look:\n")
	p.printf("  files     %s/%s/<table>/<main|correction|rejected>/dt=YYYY-MM-DD/*.csv\n", d.show(filepath.Join(d.dir, "storage")), demoEventType)
	p.printf("  status    %s status -config %s     (or: curl %s/v1/status)\n", d.self, d.show(d.cfgPath), d.base)
	p.printf("  metrics   curl %s/metrics\n", d.base)
	p.printf("  notices   %s notices -config %s -from all\n", d.self, d.show(d.cfgPath))
	p.printf("            (nats CLI: nats sub '%s.>' --stream %s --all --raw --server %s)\n", c.Notify.SubjectPrefix, c.Notify.Stream, d.natsURL)
	p.printf("  ddl       %s ddl -config %s -dialect postgres\n", d.self, d.show(d.cfgPath))
	p.printf("\nA summary line follows every %s. Ctrl-C stops: the generator stops, open sessions are flushed\n", d.every)
	p.printf("and delivered, then the daemon drains (Ctrl-C again stops at once). %s is cleared at the next start.\n\n", d.show(d.dir))
}

// Run prints a summary line every -every until ctx ends.
func (r *demoReport) Run(ctx context.Context) {
	t := time.NewTicker(r.d.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.summary(ctx, fmt.Sprintf("[%5s]", roundDuration(time.Since(r.start))))
		}
	}
}

// summary prints one line: counters, files delivered, notices. A line
// interrupted by the end of ctx (the demo is stopping) is not printed.
func (r *demoReport) summary(parent context.Context, prefix string) {
	ctx, cancel := context.WithTimeout(parent, 5*time.Second)
	defer cancel()
	var b strings.Builder
	b.WriteString(prefix)
	fmt.Fprintf(&b, " published %d |", r.d.pub.published.Load())
	if et, err := r.eventType(ctx); err != nil {
		fmt.Fprintf(&b, " status: %v |", err)
	} else {
		fmt.Fprintf(&b, " %s |", countersLine(*et))
	}
	files := countDelivered(filepath.Join(r.d.dir, "storage"))
	notices := "?"
	if n, ok := r.notices(ctx); ok {
		notices = strconv.FormatInt(n, 10)
	}
	fmt.Fprintf(&b, " files delivered: %d main, %d correction, %d rejected | notices %s\n",
		files["main"], files["correction"], files["rejected"], notices)
	if parent.Err() != nil {
		return
	}
	fmt.Fprint(r.d.io.out, b.String())
}

// eventType is the demo event type's entry of /v1/status.
func (r *demoReport) eventType(ctx context.Context) (*eventTypeStatus, error) {
	st, _, err := fetchStatus(ctx, r.d.base)
	if err != nil {
		return nil, err
	}
	for i := range st.EventTypes {
		if st.EventTypes[i].Name == demoEventType {
			return &st.EventTypes[i], nil
		}
	}
	return nil, fmt.Errorf("no %s in /v1/status", demoEventType)
}

// notices counts the messages of the notice stream; false when unknown.
func (r *demoReport) notices(ctx context.Context) (int64, bool) {
	if r.notice == nil {
		return 0, false
	}
	s, err := r.notice.Stream(ctx, r.d.cfg.Notify.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, true
	}
	if err != nil {
		return 0, false
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, false
	}
	return int64(info.State.Msgs), true
}

// countDelivered counts the files under a file:// storage root by kind
// ({event_type}/{table}/{kind}/dt=…/name, DESIGN.md §7); dot files are
// uploads in progress.
func countDelivered(root string) map[string]int {
	n := map[string]int{}
	_ = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		if rel, err := filepath.Rel(root, path); err == nil {
			if parts := strings.Split(rel, string(filepath.Separator)); len(parts) == 5 {
				n[parts[2]]++
			}
		}
		return nil
	})
	return n
}

// finish stops cleanly: generator off, wait until the daemon received
// every event, flush (close sessions, roll and deliver every file), print
// the outcome. The caller then stops the daemon.
func (r *demoReport) finish(ctx context.Context, stopGenerator func()) {
	stopGenerator()
	out := r.d.io.out
	published := r.d.pub.published.Load()
	fmt.Fprintf(out, "\nstopping: the generator stopped after %d events; waiting until the daemon received them all\n", published)
	if err := r.waitReceived(ctx, published, 30*time.Second); err != nil && ctx.Err() == nil {
		fmt.Fprintf(out, "stopping: %v\n", err)
	}
	var n int
	var err error
	if ctx.Err() == nil {
		fmt.Fprintf(out, "stopping: flushing open sessions (POST %s/v1/flush)\n", r.d.base)
		n, err = r.flush(ctx)
	}
	if ctx.Err() != nil { // a second Ctrl-C
		fmt.Fprintf(out, "stopping at once: open sessions and files stay in %s\n", r.d.show(r.d.cfg.Daemon.DataDir))
		return
	}
	if err != nil {
		fmt.Fprintf(out, "stopping: flush: %v\n", err)
	} else {
		fmt.Fprintf(out, "stopping: flush delivered %s\n", plural(n, "file"))
	}
	r.summary(ctx, fmt.Sprintf("demo finished after %s:", roundDuration(time.Since(r.start))))
	w := demoWindow(r.d.articles)
	fmt.Fprintf(out, "generated %d events (seed %d, %d articles, window %d, step %d)\n\n",
		published, r.d.seed, r.d.articles, w.Width, w.Step)
}

// waitReceived polls /v1/status until the daemon received n events.
func (r *demoReport) waitReceived(ctx context.Context, n int64, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		et, err := r.eventType(ctx)
		if err == nil && int64(et.Counters.Received) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return fmt.Errorf("the daemon received %d of %d events within %s", et.Counters.Received, n, limit)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// flush calls POST /v1/flush and returns the number of files it delivered.
func (r *demoReport) flush(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, raw, err := adminDo(ctx, http.MethodPost, r.d.base, "/v1/flush", "")
	if err != nil {
		return 0, err
	}
	var body struct {
		Files []json.RawMessage `json:"files"`
		Error string            `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return 0, fmt.Errorf("%s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", resp.Status, body.Error)
	}
	return len(body.Files), nil
}
