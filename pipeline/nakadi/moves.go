package nakadi

import (
	"context"
	"maps"
	"time"
)

// Prompt partition moves (docs/nakadi.md §6.2). Nakadi tells a consumer
// nothing when one of its partitions goes to another stream. The signs are
// a 422 on commit, /stats naming another stream — and, first of all, the
// partition falling silent: Nakadi sends every assigned partition a line
// (events or a keep-alive) at least every batch_flush_timeout, and nothing
// more for a partition it is moving away. So /stats is polled every
// StatsInterval while the assignment is settled, and every
// StatsFastInterval while a move may be under way: after a stream of ours
// opened, after a 422, when a partition of ours stayed silent for
// batch_flush_timeout + silenceMargin while the stream went on, when the
// whole stream stayed silent that long, and as long as /stats shows a
// partition reassigning or an assignment that differs from the poll
// before. Polling slows down again after settledPolls polls in a row that
// found nothing moving.

const (
	// settledPolls fast polls in a row must find the assignment settled
	// before polling slows down.
	settledPolls = 3
	// silenceMargin is added to batch_flush_timeout before a partition
	// counts as silent (Nakadi's flush timer and the network jitter).
	silenceMargin = time.Second
)

// moves decides how often /stats is polled. Guarded by Consumer.mu.
type moves struct {
	fast     bool
	calm     int                     // fast polls in a row that found the assignment settled
	view     map[PartitionKey]string // state and stream of every partition at the last poll
	lastPoll time.Time
	now      bool // poll at the next look, whatever the interval
}

// suspectMoveLocked makes /stats polled now and fast until the assignment
// settled. Called with c.mu held.
func (c *Consumer) suspectMoveLocked(why string) {
	m := &c.moves
	if !m.fast {
		c.log.Info().Str("why", why).Stringer("interval", min(c.cfg.StatsInterval, c.cfg.StatsFastInterval)).Msg("a partition may be moving: polling /stats fast")
	}
	m.fast, m.calm, m.now = true, 0, true
	signal(c.statsNow)
}

// suspectMove is suspectMoveLocked for callers without c.mu.
func (c *Consumer) suspectMove(why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.suspectMoveLocked(why)
}

// observeStats records what a /stats poll showed: a partition reassigning,
// or any change of the assignment since the poll before, keeps polling
// fast. Called with c.mu held.
func (c *Consumer) observeStats(view map[PartitionKey]string, reassigning bool) {
	m := &c.moves
	changed := m.view != nil && !maps.Equal(view, m.view)
	m.view = view
	switch {
	case reassigning:
		c.suspectMoveLocked("stats shows a partition reassigning")
	case changed:
		c.suspectMoveLocked("stats shows another assignment")
	case m.fast:
		if m.calm++; m.calm >= settledPolls {
			m.fast = false
			c.log.Info().Stringer("interval", c.cfg.StatsInterval).Msg("partition assignment settled: polling /stats at the normal interval")
		}
	}
}

// statsDue reports whether a poll is due at now, and notes it as done.
func (c *Consumer) statsDue(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := &c.moves
	iv := c.cfg.StatsInterval
	if m.fast {
		iv = min(iv, c.cfg.StatsFastInterval)
	}
	if !m.now && now.Sub(m.lastPoll) < iv {
		return false
	}
	m.now, m.lastPoll = false, now
	return true
}

// statsLoop polls /stats (pollStats) when due: it looks every
// min(StatsInterval, StatsFastInterval), checks for silent partitions, and
// polls at once when asked to (statsNow).
func (c *Consumer) statsLoop(ctx context.Context) {
	if c.cfg.StatsInterval < 0 {
		return
	}
	tick := time.NewTicker(min(c.cfg.StatsInterval, c.cfg.StatsFastInterval))
	defer tick.Stop()
	c.mu.Lock()
	c.moves.lastPoll = c.now()
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.statsNow:
		}
		c.checkSilence()
		if !c.statsDue(c.now()) {
			continue
		}
		if err := c.pollStats(ctx); err != nil && ctx.Err() == nil {
			c.log.Debug().Err(err).Msg("stats poll failed")
		}
	}
}

// checkSilence reports a partition of the current stream that got no line
// for batch_flush_timeout + silenceMargin while other partitions did, and
// a stream that sent nothing at all that long: Nakadi may be moving
// partitions away. Each silence is reported once.
func (c *Consumer) checkSilence() {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.cur
	if st == nil {
		return
	}
	limit := c.cfg.BatchFlushTimeout + silenceMargin
	for key, last := range st.lastLine {
		if !st.lost[key] && !st.silent[key] && st.lastAny.Sub(last) > limit {
			st.silent[key] = true
			c.suspectMoveLocked("partition " + key.Partition + " silent")
		}
	}
	if st.idle != nil && !st.silent[PartitionKey{}] && st.idle.waitingFor(time.Now()) > limit {
		st.silent[PartitionKey{}] = true // the whole stream; cleared by its next line
		c.suspectMoveLocked("stream silent")
	}
}
