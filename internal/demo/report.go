package demo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"materializer/conf"
	"materializer/pipeline"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// report is what the demo prints: the banner, a summary line every
// -every, and the steps of a clean stop.
type report struct {
	d      *demo
	start  time.Time
	notice jetstream.JetStream // counts notices; nil if NATS cannot be reached
	nc     *nats.Conn
}

func newReport(d *demo) *report {
	r := &report{d: d, start: time.Now()}
	if nc, err := nats.Connect(d.natsURL, nats.Name("materializer-demo-report")); err == nil {
		r.nc = nc
		r.notice, _ = jetstream.New(nc)
	}
	return r
}

func (r *report) close() {
	if r.nc != nil {
		r.nc.Close()
	}
}

// banner tells where everything is.
func (r *report) banner() {
	d, c := r.d, r.d.cfg
	et := c.EventTypes[slices.IndexFunc(c.EventTypes, func(et conf.EventType) bool { return et.Name == EventType })]
	w := window(d.Articles)
	var b strings.Builder
	p := &b
	fmt.Fprintf(p, "\nmaterializer demo: everything runs in this process; nothing else is needed.\n\n")
	fmt.Fprintf(p, "  Nakadi emulator  %s  event type %s, %d partitions\n", d.nk.URL(), EventType, partitions)
	fmt.Fprintf(p, "  generator        %d events/s over %d articles, in bursts of ~%d updates per article with rising versions;\n",
		d.Rate, d.Articles, w.Step)
	fmt.Fprintf(p, "                   ~3%% out of order, 2%% duplicates, 1%% conflicting, 1%% malformed (seed %d)\n", d.Seed)
	fmt.Fprintf(p, "  NATS JetStream   %s  stream %s, subjects %s.>\n", d.natsURL, c.Notify.Stream, c.Notify.SubjectPrefix)
	fmt.Fprintf(p, "  daemon           config %s (made from %s), data in %s\n", d.show(d.cfgPath), d.Config, d.show(c.Daemon.DataDir))
	fmt.Fprintf(p, "                   session gap %s, session max %s; files roll at %s or %d rows\n",
		et.SessionGap, et.SessionMax, c.Storage.RollMaxAge, c.Storage.RollMaxRows)
	fmt.Fprintf(p, "\nWhere to look:\n")
	fmt.Fprintf(p, "  files     %s/%s/<table>/<main|correction|rejected>/dt=YYYY-MM-DD/*.csv\n", d.show(filepath.Join(d.Dir, "storage")), EventType)
	fmt.Fprintf(p, "  status    %s status -config %s     (or: curl %s/v1/status)\n", d.Self, d.show(d.cfgPath), d.base)
	fmt.Fprintf(p, "  metrics   curl %s/metrics\n", d.base)
	fmt.Fprintf(p, "  notices   %s notices -config %s -from all\n", d.Self, d.show(d.cfgPath))
	fmt.Fprintf(p, "            (nats CLI: nats sub '%s.>' --stream %s --all --raw --server %s)\n", c.Notify.SubjectPrefix, c.Notify.Stream, d.natsURL)
	fmt.Fprintf(p, "  ddl       %s ddl -config %s -dialect postgres\n", d.Self, d.show(d.cfgPath))
	fmt.Fprint(p, d.loaderLine())
	fmt.Fprintf(p, "\nA summary line follows every %s. Ctrl-C stops: the generator stops, open sessions are flushed\n", d.Every)
	fmt.Fprintf(p, "and delivered, then the pipeline drains (Ctrl-C again stops at once). %s is cleared at the next start.\n\n", d.show(d.Dir))
	fmt.Fprint(d.Out, b.String())
}

// Run prints a summary line every -every until ctx ends.
func (r *report) Run(ctx context.Context) {
	t := time.NewTicker(r.d.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.summary(ctx, fmt.Sprintf("[%5s]", time.Since(r.start).Round(time.Second)))
		}
	}
}

// summary prints one line: counters, files delivered, notices. A line
// interrupted by the end of ctx (the demo is stopping) is not printed.
func (r *report) summary(parent context.Context, prefix string) {
	ctx, cancel := context.WithTimeout(parent, 5*time.Second)
	defer cancel()
	var b strings.Builder
	b.WriteString(prefix)
	fmt.Fprintf(&b, " published %d |", r.d.pub.published.Load())
	if et, err := r.eventType(ctx); err != nil {
		fmt.Fprintf(&b, " status: %v |", err)
	} else {
		fmt.Fprintf(&b, " %s |", et.Counters)
	}
	files := countDelivered(filepath.Join(r.d.Dir, "storage"))
	notices := "?"
	if n, ok := r.notices(ctx); ok {
		notices = strconv.FormatInt(n, 10)
	}
	fmt.Fprintf(&b, " files delivered: %d main, %d correction, %d rejected | notices %s%s\n",
		files["main"], files["correction"], files["rejected"], notices, r.d.loaderSummary())
	if parent.Err() != nil {
		return
	}
	fmt.Fprint(r.d.Out, b.String())
}

// eventType is the demo event type's entry of the pipeline's status.
func (r *report) eventType(ctx context.Context) (*pipeline.EventTypeStatus, error) {
	st, err := r.d.pipe.Status(ctx)
	if err != nil {
		return nil, err
	}
	for i := range st.EventTypes {
		if st.EventTypes[i].Name == EventType {
			return &st.EventTypes[i], nil
		}
	}
	return nil, fmt.Errorf("%s is not running yet", EventType)
}

// notices counts the messages of the notice stream; false when unknown.
func (r *report) notices(ctx context.Context) (int64, bool) {
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
// ({event_type}/{table}/{kind}/dt=…/name, docs/files-and-notices.md); dot files are
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
func (r *report) finish(ctx context.Context, stopGenerator func()) {
	stopGenerator()
	out := r.d.Out
	published := r.d.pub.published.Load()
	fmt.Fprintf(out, "\nstopping: the generator stopped after %d events; waiting until the daemon received them all\n", published)
	if err := r.waitReceived(ctx, published, 30*time.Second); err != nil && ctx.Err() == nil {
		fmt.Fprintf(out, "stopping: %v\n", err)
	}
	var n int
	var err error
	if ctx.Err() == nil {
		fmt.Fprintf(out, "stopping: flushing open sessions (as POST %s/v1/flush does)\n", r.d.base)
		n, err = r.flush(ctx)
	}
	if ctx.Err() != nil { // a second Ctrl-C
		fmt.Fprintf(out, "stopping at once: open sessions and files stay in %s\n", r.d.show(r.d.cfg.Daemon.DataDir))
		return
	}
	if err != nil {
		fmt.Fprintf(out, "stopping: flush: %v\n", err)
	} else {
		fmt.Fprintf(out, "stopping: flush delivered %d file(s)\n", n)
	}
	r.d.waitLoaded(ctx, 30*time.Second)
	r.summary(ctx, fmt.Sprintf("demo finished after %s:", time.Since(r.start).Round(time.Second)))
	w := window(r.d.Articles)
	fmt.Fprintf(out, "generated %d events (seed %d, %d articles, window %d, step %d)\n\n",
		published, r.d.Seed, r.d.Articles, w.Width, w.Step)
}

// waitReceived polls the pipeline's status until it received n events.
func (r *report) waitReceived(ctx context.Context, n int64, limit time.Duration) error {
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
			return fmt.Errorf("the pipeline received %d of %d events within %s", et.Counters.Received, n, limit)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// flush closes every open session and returns the number of files it
// delivered.
func (r *report) flush(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := r.d.pipe.Flush(ctx, "")
	return len(res.Files), err
}
