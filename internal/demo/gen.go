package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"materializer/pipeline/nakadi/nakaditest"
)

// demoEventType is what the demo's generator publishes.
const demoEventType = "article.updated"

// demoPublisher publishes generated article.updated events to the
// emulator at a steady rate, in batches as a producer would.
type demoPublisher struct {
	nk        *nakaditest.Server
	gen       *articleGen
	win       articleWindow
	rate      int // events per second
	published atomic.Int64
}

// demoWindow sizes the active window of articleWindow for a number of
// articles: about an eighth of them, sliding every 10 events.
func demoWindow(articles int) articleWindow {
	return articleWindow{Width: max(1, articles*2/15), Step: 10}
}

func newDemoPublisher(nk *nakaditest.Server, seed uint64, articles, rate int) *demoPublisher {
	return &demoPublisher{nk: nk, gen: newArticleGen(seed, articles, time.Now), win: demoWindow(articles), rate: rate}
}

// Run publishes until ctx ends; it fails only if the emulator refuses
// events.
func (p *demoPublisher) Run(ctx context.Context) error {
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
func (p *demoPublisher) publish(n int) error {
	for n > 0 {
		batch := make([][]byte, min(n, 500))
		for i := range batch {
			batch[i] = p.gen.nextIn(&p.win).Raw
		}
		if err := p.nk.Publish(demoEventType, batch...); err != nil {
			return fmt.Errorf("demo: publishing to the emulator: %w", err)
		}
		p.published.Add(int64(len(batch)))
		n -= len(batch)
	}
	return nil
}
