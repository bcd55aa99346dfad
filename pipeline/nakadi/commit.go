package nakadi

import (
	"context"
	"errors"
	"time"
)

// drainTick is how often commits go out while draining.
const drainTick = 50 * time.Millisecond

// commitLoop commits ready cursors every CommitInterval (sooner when asked
// to), and until ctx ends looks at /stats when due (lookAtStats). After
// drain closes it keeps committing until nothing handed out is left
// uncommitted or DrainTimeout passed.
func (c *Consumer) commitLoop(ctx context.Context, drain <-chan struct{}) {
	cctx := context.Background() // commits go on after ctx: a drain commits what became durable
	tick := time.NewTicker(c.cfg.CommitInterval)
	defer tick.Stop()
	var stats <-chan time.Time
	statsNow := c.statsNow
	if t := c.statsTicker(); t != nil {
		defer t.Stop()
		stats = t.C
	} else {
		statsNow = nil
	}
	var deadline <-chan struct{}
	for {
		select {
		case <-stats:
			c.lookAtStats(ctx)
			continue
		case <-statsNow:
			c.lookAtStats(ctx)
			continue
		case <-tick.C:
		case <-c.commitNow:
		case <-drain:
			dctx, cancel := context.WithTimeout(context.Background(), c.cfg.DrainTimeout)
			defer cancel()
			cctx, deadline, drain = dctx, dctx.Done(), nil
			stats, statsNow = nil, nil
			tick.Reset(min(drainTick, c.cfg.CommitInterval))
		case <-deadline:
			if c.tr.pending() {
				c.log.Warn().Int("uncommitted_events", c.tr.uncommittedEvents()).Msg("drain ended with batches not durable or not committed; Nakadi will re-send them")
			}
			return
		}
		c.flushCommits(cctx)
		if deadline != nil && !c.tr.pending() {
			return
		}
	}
}

// flushCommits commits the ready cursors, one request per stream id.
func (c *Consumer) flushCommits(ctx context.Context) {
	for sid, items := range c.tr.take() {
		c.commitGroup(ctx, sid, items)
	}
}

// commitGroup commits the cursors of one stream. A 422 for several cursors
// is retried one by one to find the partitions that are gone.
func (c *Consumer) commitGroup(ctx context.Context, sid string, items []commitItem) {
	c.mu.Lock()
	subID := c.subID
	c.mu.Unlock()
	cursors := make([]Cursor, len(items))
	for i, it := range items {
		cursors[i] = it.entry.cursor
	}
	start := time.Now()
	_, err := c.api.commit(ctx, subID, sid, cursors)
	c.m.commitRequest.WithLabelValues(c.label).Observe(time.Since(start).Seconds())
	switch {
	case err == nil: // 204, or 200 with committed/outdated: both mean covered
		for _, it := range items {
			c.committed(it)
		}
	case errors.Is(err, ErrSessionGone) && len(items) > 1:
		for _, it := range items {
			c.commitGroup(ctx, sid, []commitItem{it})
		}
	case errors.Is(err, ErrSessionGone):
		// Ask /stats now: it names the new owner if the move is done. The
		// poll counts as the one suspectMove asked for.
		c.suspectMove("422 on commit")
		if c.statsDue(c.now()) {
			if err := c.pollStats(ctx); err != nil {
				c.log.Debug().Err(err).Msg("stats poll after a 422 failed")
			}
		}
		key := items[0].sp.key
		c.partitionLost(sid, key, c.newOwner(key, sid), err.Error())
	case errors.Is(err, ErrBadRequest):
		// Our request is wrong and will stay wrong: drop it; Nakadi re-sends.
		c.log.Error().Err(err).Str("stream_id", sid).Msg("commit rejected as malformed; dropping these cursors")
		for _, it := range items {
			c.tr.drop(it.sp)
		}
	default:
		for _, it := range items {
			c.tr.retry(it)
		}
		c.noteErr(err)
	}
}

// committed records an accepted cursor.
func (c *Consumer) committed(it commitItem) {
	c.tr.committed(it)
	key := it.sp.key
	lat := c.now().Sub(it.entry.received)
	c.mu.Lock()
	ps := c.partStat(key)
	if ps.committed == "" || CompareOffsets(it.entry.cursor.Offset, ps.committed) > 0 {
		ps.committed = it.entry.cursor.Offset
	}
	ps.commitLatency = lat
	c.mu.Unlock()
	l := []string{key.EventType, key.Partition}
	c.m.commitLatency.WithLabelValues(l...).Observe(lat.Seconds())
	if n, ok := offsetNumber(it.entry.cursor.Offset); ok {
		c.m.committedOffset.WithLabelValues(l...).Set(float64(n))
	}
}
