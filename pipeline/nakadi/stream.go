package nakadi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"materializer/internal/backoff"
)

// retentionSkipInfo is the info text that means data loss (docs/nakadi.md §4.2).
const retentionSkipInfo = "skipped events due to retention time passed"

// openStream opens a stream and registers it as current.
func (c *Consumer) openStream(ctx context.Context) (*streamState, *http.Response, error) {
	c.mu.Lock()
	subID := c.subID
	c.mu.Unlock()
	sctx, cancel := context.WithCancel(ctx)
	resp, err := c.api.openStream(sctx, subID, c.cfg.streamQuery())
	if err != nil {
		cancel()
		return nil, nil, err
	}
	id := resp.Header.Get("X-Nakadi-StreamId")
	if id == "" {
		resp.Body.Close()
		cancel()
		return nil, nil, fmt.Errorf("nakadi: %s: answer without X-Nakadi-StreamId", opStream)
	}
	st := &streamState{id: id, ctx: sctx, cancel: cancel, opened: c.now(), epoch: map[PartitionKey]int{},
		lost: map[PartitionKey]bool{}, first: map[PartitionKey]uint64{},
		lastLine: map[PartitionKey]time.Time{}, silent: map[PartitionKey]bool{}}
	c.mu.Lock()
	c.pruneStreams()
	c.cur, c.streams[id] = st, st
	if c.opened > 0 {
		c.m.reconnects.WithLabelValues(c.label).Inc()
	}
	c.opened++
	c.fatal = false
	if c.paused {
		st.dropRest = true
		cancel()
	}
	// A new stream may come with fewer partitions than the last one had:
	// /stats tells which went to other streams (docs/nakadi.md §6.2).
	c.suspectMoveLocked("stream opened")
	c.mu.Unlock()
	c.m.streaming.WithLabelValues(c.label).Set(1)
	c.m.fatal.WithLabelValues(c.label).Set(0)
	c.log.Info().Str("stream_id", id).Str("flow_id", resp.Header.Get("X-Flow-Id")).Msg("stream opened")
	return st, resp, nil
}

// endStream unregisters the current stream.
func (c *Consumer) endStream(st *streamState, err error) {
	st.cancel()
	c.mu.Lock()
	st.ended = c.now()
	if c.cur == st {
		c.cur = nil
	}
	c.mu.Unlock()
	c.m.streaming.WithLabelValues(c.label).Set(0)
	c.log.Info().Str("stream_id", st.id).AnErr("reason", err).Stringer("lasted", c.now().Sub(st.opened)).Msg("stream closed")
}

// pruneStreams forgets streams that ended long enough ago that no commit
// for them can succeed any more. Called with c.mu held.
func (c *Consumer) pruneStreams() {
	for id, st := range c.streams {
		if !st.ended.IsZero() && c.now().Sub(st.ended) > 2*c.cfg.CommitTimeout {
			delete(c.streams, id)
		}
	}
}

// readState is the reader's view of one stream.
type readState struct {
	epoch map[PartitionKey]int    // the partition's epoch when a line of it was last seen
	last  map[PartitionKey]string // offset of its last event batch in that epoch
}

// readStream reads one stream until it ends. healthy: at least one line
// arrived. A nil error means the stream was closed by Pause or ctx.
func (c *Consumer) readStream(ctx context.Context, st *streamState, resp *http.Response, in chan<- *Batch) (healthy bool, err error) {
	defer resp.Body.Close()
	idle := newIdleReader(resp.Body, c.cfg.IdleTimeout, st.cancel)
	defer idle.stop()
	c.mu.Lock()
	st.idle = idle
	c.mu.Unlock()
	r := newStreamReader(idle, c.cfg.ReadBufferBytes, c.cfg.MaxLineBytes, c.cfg.Buffers)
	rs := &readState{epoch: map[PartitionKey]int{}, last: map[PartitionKey]string{}}
	for {
		b, err := r.next(st.ctx)
		if err != nil {
			return healthy, c.readErr(ctx, st, idle, err)
		}
		healthy = true
		b.StreamID = st.id
		deliver, err := c.receive(st.ctx, st, rs, b)
		if err != nil || !deliver {
			c.free(b)
		}
		if err != nil {
			return healthy, c.readErr(ctx, st, idle, err)
		}
		if !deliver {
			continue
		}
		select {
		case in <- b:
		case <-st.ctx.Done():
			c.free(b)
			return healthy, c.readErr(ctx, st, idle, st.ctx.Err())
		}
	}
}

// free gives back the memory a batch that leaves the consumer (handed out
// or dropped) reserved. The batch is not touched: once handed out it is the
// engine's.
func (c *Consumer) free(b *Batch) { c.cfg.Buffers.release(b.held) }

// readErr classifies the end of a stream.
func (c *Consumer) readErr(ctx context.Context, st *streamState, idle *idleReader, err error) error {
	c.mu.Lock()
	paused := st.dropRest
	c.mu.Unlock()
	switch {
	case ctx.Err() != nil || paused:
		return nil
	case idle.fired.Load():
		return fmt.Errorf("%w: nothing for %v", ErrIdleTimeout, c.cfg.IdleTimeout)
	case errors.Is(err, io.EOF):
		return ErrStreamEnded
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: cut inside a line: %w", ErrStreamEnded, err)
	}
	return fmt.Errorf("nakadi: reading stream %s: %w", st.id, err)
}

// receive accounts one line and decides whether it goes downstream. The
// first event batch of a partition in this stream (or after the partition
// came back) gets the committed cursor, read now. A line whose event type
// or partition is not a valid name (names.go) ends the stream with an error
// wrapping ErrInvalidName, before the name is used for anything.
func (c *Consumer) receive(ctx context.Context, st *streamState, rs *readState, b *Batch) (bool, error) {
	if err := checkNames(b.Cursor); err != nil {
		return false, err // ends the stream: the batch is neither handed out nor committed
	}
	key := b.Cursor.Key()
	c.mu.Lock()
	e := st.epoch[key]
	if prev, ok := rs.epoch[key]; !ok || prev != e {
		rs.epoch[key] = e
		delete(rs.last, key)
		delete(st.lost, key)
		c.firstSeq++
		st.first[key] = c.firstSeq
	}
	b.epoch, b.st = e, st
	now := c.now()
	st.lastLine[key], st.lastAny = now, now
	delete(st.silent, key)
	delete(st.silent, PartitionKey{}) // the whole stream's silence
	ps := c.partStat(key)
	c.accountLocked(ps, st, b)
	c.mu.Unlock()
	c.observeLine(key, b)
	last, had := rs.last[key] // had: an event batch of the partition came before in this epoch
	if had && !b.keepAlive() && CompareOffsets(b.Cursor.Offset, last) <= 0 {
		c.m.duplicates.WithLabelValues(key.EventType, key.Partition).Inc()
		c.log.Warn().Str("stream_id", st.id).Str("partition", key.Partition).Str("offset", b.Cursor.Offset).Str("previous", last).Msg("dropping a batch whose offset does not advance")
		return false, nil
	}
	if b.Info != "" {
		c.logInfo(b)
	}
	if b.keepAlive() {
		return false, nil
	}
	rs.last[key] = b.Cursor.Offset
	if !had {
		committed, err := c.fetchCommitted(ctx, key)
		if err != nil {
			return false, err
		}
		b.Committed = committed
	}
	return true, nil
}

// accountLocked updates the partition's status counters. Called with c.mu
// held.
func (c *Consumer) accountLocked(ps *partStat, st *streamState, b *Batch) {
	ps.bytes += int64(b.bytes)
	if ps.lastStream != st.id {
		ps.lastStream = st.id
		ps.streams++
	}
	if b.keepAlive() {
		ps.keepAlives++
		return
	}
	ps.events += int64(len(b.Events))
	ps.received = b.Cursor.Offset
}

// observeLine updates the per-partition metrics of a line.
func (c *Consumer) observeLine(key PartitionKey, b *Batch) {
	l := []string{key.EventType, key.Partition}
	c.m.bytes.WithLabelValues(l...).Add(float64(b.bytes))
	if b.keepAlive() {
		c.m.keepAlives.WithLabelValues(l...).Inc()
		return
	}
	c.m.events.WithLabelValues(l...).Add(float64(len(b.Events)))
	if n, ok := offsetNumber(b.Cursor.Offset); ok {
		c.m.receivedOffset.WithLabelValues(l...).Set(float64(n))
	}
}

// logInfo logs info.debug; Nakadi skipping expired events is data loss and
// logs at error level with alert=true.
func (c *Consumer) logInfo(b *Batch) {
	ev := c.log.Info()
	if strings.Contains(b.Info, retentionSkipInfo) {
		ev = c.log.Error().Bool("alert", true)
		c.m.retentionSkips.WithLabelValues(c.label).Inc()
	}
	ev.Str("stream_id", b.StreamID).Str("partition_event_type", b.Cursor.EventType).Str("partition", b.Cursor.Partition).
		Str("offset", b.Cursor.Offset).Str("info", b.Info).Msg("nakadi stream info")
}

// fetchCommitted reads the partition's committed cursor (a few quick
// retries; then the stream is given up and re-opened).
func (c *Consumer) fetchCommitted(ctx context.Context, key PartitionKey) (*Cursor, error) {
	c.mu.Lock()
	subID := c.subID
	c.mu.Unlock()
	var err error
	for attempt := range 3 {
		var cs []Cursor
		if cs, err = c.api.cursors(ctx, subID); err == nil {
			for _, cur := range cs {
				if cur.Key() == key {
					return &cur, nil
				}
			}
			c.log.Warn().Str("partition_event_type", key.EventType).Str("partition", key.Partition).Msg("no committed cursor listed for the partition")
			return nil, nil
		}
		if Fatal(err) || !backoff.Sleep(ctx, c.cfg.BackoffMin<<attempt) {
			break
		}
	}
	return nil, fmt.Errorf("reading committed cursors: %w", err)
}

// idleReader cancels the stream when one Read waits longer than d. Time
// spent outside Read (downstream backpressure) does not count. waiting is
// when the Read under way started (unix ns; 0 outside Read).
type idleReader struct {
	r       io.Reader
	d       time.Duration
	t       *time.Timer
	fired   atomic.Bool
	waiting atomic.Int64
}

func newIdleReader(r io.Reader, d time.Duration, onIdle func()) *idleReader {
	ir := &idleReader{r: r, d: d}
	ir.t = time.AfterFunc(time.Hour, func() {
		ir.fired.Store(true)
		onIdle()
	})
	ir.t.Stop()
	return ir
}

func (ir *idleReader) Read(p []byte) (int, error) {
	ir.t.Reset(ir.d)
	ir.waiting.Store(time.Now().UnixNano())
	n, err := ir.r.Read(p)
	ir.waiting.Store(0)
	ir.t.Stop()
	return n, err
}

// waitingFor is how long the Read under way has waited (0 outside Read).
func (ir *idleReader) waitingFor(now time.Time) time.Duration {
	if since := ir.waiting.Load(); since != 0 {
		return now.Sub(time.Unix(0, since))
	}
	return 0
}

func (ir *idleReader) stop() { ir.t.Stop() }
