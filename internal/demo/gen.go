package demo

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"materializer/internal/articles"
	"materializer/pipeline/nakadi/emulator"
)

// publisher publishes generated article.updated events to the
// emulator at a steady rate, in batches as a producer would.
type publisher struct {
	nk        *emulator.Server
	gen       *articles.Gen
	win       articles.Window
	rate      int // events per second
	published atomic.Int64
}

// window sizes the active window of articles.Window for a number of
// articles: about an eighth of them, sliding every 10 events.
func window(n int) articles.Window {
	return articles.Window{Width: max(1, n*2/15), Step: 10}
}

func newPublisher(nk *emulator.Server, seed uint64, n, rate int) *publisher {
	return &publisher{nk: nk, gen: articles.New(seed, n, time.Now), win: window(n), rate: rate}
}

// Run publishes until ctx ends; it fails only if the emulator refuses
// events.
func (p *publisher) Run(ctx context.Context) error {
	const every = 100 * time.Millisecond
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds()*float64(p.rate)) - p.published.Load()
			// After a stall, go on at the rate rather than catch up at once.
			if err := p.publish(int(min(due, int64(p.rate)))); err != nil {
				return err
			}
		}
	}
}

// publish makes and publishes n events in batches of at most 500.
func (p *publisher) publish(n int) error {
	for n > 0 {
		batch := make([][]byte, min(n, 500))
		for i := range batch {
			batch[i] = p.gen.NextIn(&p.win).Raw
		}
		if err := p.nk.Publish(EventType, batch...); err != nil {
			return fmt.Errorf("demo: publishing to the emulator: %w", err)
		}
		p.published.Add(int64(len(batch)))
		n -= len(batch)
	}
	return nil
}
