package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"materializer/pipeline"
	"materializer/pipeline/outbox"
	"net/http"
	"strings"
	"time"
)

// cmdStatus is `materializer status`: GET /v1/status from the configured
// admin_listen, printed for humans (or as the raw JSON with -json). Exit 1
// with one line when no daemon answers.
func cmdStatus(args []string, io stdio) int {
	fs := newFlags("status", io)
	path := fs.String("config", defaultConfigPath, "config `file`")
	raw := fs.Bool("json", false, "print the raw JSON of GET /v1/status")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	cfg, ok := loadConfig(*path, clientMode, io.err)
	if !ok {
		return exitUsage
	}
	client, err := newAdminClient(cfg)
	if err != nil {
		fmt.Fprintf(io.err, "materializer status: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, body, err := fetchStatus(ctx, client)
	if err != nil {
		fmt.Fprintf(io.err, "materializer status: %v\n", err)
		return exitFailure
	}
	if *raw {
		_, err = io.out.Write(body)
	} else {
		err = printStatus(io.out, st, client.base, time.Now())
	}
	if err != nil {
		fmt.Fprintf(io.err, "materializer status: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// statusView is GET /v1/status as a client decodes it.
type statusView = statusDoc

// fetchStatus gets and decodes /v1/status; body is the raw answer.
func fetchStatus(ctx context.Context, c *adminClient) (*statusView, []byte, error) {
	resp, body, err := c.do(ctx, http.MethodGet, "/v1/status")
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, body, fmt.Errorf("GET %s/v1/status: %s: %s", c.base, resp.Status, strings.TrimSpace(string(body)))
	}
	var st statusView
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, body, fmt.Errorf("GET %s/v1/status: not a status document: %w", c.base, err)
	}
	return &st, body, nil
}

// printStatus writes the human view of a status document.
func printStatus(w io.Writer, st *statusView, base string, now time.Time) error {
	p := &errWriter{w: w}
	state := "not ready"
	switch {
	case st.Draining:
		state = "draining"
	case st.Drained:
		state = "drained (`materializer drain -undo` or a restart consumes again)"
	case st.Ready:
		state = "ready"
	}
	p.printf("materializer %s on %s: %s, up %s (since %s)\n", st.Version, strings.TrimPrefix(base, "http://"),
		state, roundDuration(now.Sub(st.StartedAt)), st.StartedAt.UTC().Format(time.RFC3339))
	switch {
	case st.DiskFull:
		p.printf("STAGING DISK FULL: consuming paused until space returns: %s\n", st.StepError)
	case st.StepError != "":
		p.printf("PROCESSING STEPS FAIL (retried, then the daemon exits): %s\n", st.StepError)
	}
	if st.WriterID != "" {
		p.printf("writer %s\n", st.WriterID)
	}
	if m := st.Memory; m.Budget.Limit > 0 {
		u := m.InUse
		p.printf("memory: resident %s of %s; Go %s (soft limit %s), key cache %s, Pebble %s, consumer batches %s of %s\n",
			byteSize(u.Resident), byteSize(m.Budget.Limit), byteSize(u.GoTotal), byteSize(u.GoLimit), byteSize(u.KeyCache),
			byteSize(u.MemTables+u.BlockCache), byteSize(u.ConsumerBatches), byteSize(m.Budget.ConsumerBatches))
	}
	if len(st.EventTypes) > 0 {
		printDelivery(p, st.EventTypes[0].Delivery, now)
	}
	for _, et := range st.EventTypes {
		printEventType(p, et)
	}
	return p.err
}

func printDelivery(p *errWriter, d outbox.Status, now time.Time) {
	p.printf("delivery: %d pending (%s), %d uploaded and waiting for their notice, %d failing\n",
		d.PendingFiles, byteSize(d.PendingBytes), d.Uploaded, d.Failing)
	if !d.LastAt.IsZero() {
		p.printf("  last delivered %s ago: %s\n", roundDuration(now.Sub(d.LastAt)), d.LastKey)
	}
	if d.LastError != "" {
		p.printf("  last error: %s\n", d.LastError)
	}
}

func printEventType(p *errWriter, et pipeline.EventTypeStatus) {
	c := et.Counters
	p.printf("\n%s: %s\n", et.Name, et.State)
	p.printf("  events      %s\n", c)
	if c.Redelivered > 0 {
		p.printf("  redelivered %d (recognized and skipped)\n", c.Redelivered)
	}
	ratio := "-"
	if et.CompactionRatio > 0 {
		ratio = fmt.Sprintf("%.1f events received per event written (main + correction)", et.CompactionRatio)
	}
	p.printf("  compaction  %s\n", ratio)
	p.printf("  sessions    %d open\n", et.OpenSessions)
	p.printf("  staging     %s open, %s\n", plural(et.OpenFiles, "file"), byteSize(et.OpenFileBytes))
	p.printf("  nakadi      subscription %s, stream %s\n", orDash(et.Subscription), orDash(et.StreamID))
	if et.LastError != "" {
		p.printf("  last error  %s\n", et.LastError)
	}
	printPartitions(p, et.Partitions)
}

func printPartitions(p *errWriter, parts []pipeline.PartitionStatus) {
	if len(parts) == 0 {
		p.printf("  partitions  none assigned yet\n")
		return
	}
	rows := [][]string{{"partition", "applied offset", "committed offset", "lag", "received", "open files"}}
	for _, ps := range parts {
		lag := "?"
		if ps.Lag != nil {
			lag = fmt.Sprint(*ps.Lag)
		}
		rows = append(rows, []string{ps.Partition, orDash(ps.AppliedOffset), orDash(ps.CommittedOffset), lag,
			fmt.Sprint(ps.EventsReceived), fmt.Sprintf("%d (%s)", ps.OpenFiles, byteSize(ps.OpenFileBytes))})
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, f := range r {
			width[i] = max(width[i], len(f))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, f := range r {
			if i == len(r)-1 {
				b.WriteString(f)
				break
			}
			fmt.Fprintf(&b, "%-*s  ", width[i], f)
		}
		p.printf("%s\n", b.String())
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// roundDuration drops sub-second noise: 3m12s, 850ms.
func roundDuration(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// errWriter keeps the first write error, so printers stay linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (p *errWriter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
