package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// backpressure pauses every consumer while staged bytes (open staging files
// plus sealed files waiting for delivery) exceed storage.max_staged_bytes,
// or while the staging disk is full (the engine waits for space), and
// resumes them below 80 % of it with space back. Durable cursors keep being
// committed while paused; nothing is dropped.
type backpressure struct {
	p      *Pipeline
	log    zerolog.Logger
	limit  atomic.Int64 // storage.max_staged_bytes (reloadable)
	active atomic.Bool
	m      backpressureMetrics
}

type backpressureMetrics struct {
	staged, active prometheus.Gauge
}

func newBackpressure(p *Pipeline, reg prometheus.Registerer) *backpressure {
	b := &backpressure{p: p, log: p.log.With().Str("component", "backpressure").Logger()}
	b.limit.Store(p.cfg.Storage.MaxStagedBytes.Bytes())
	b.m = backpressureMetrics{
		staged: prometheus.NewGauge(prometheus.GaugeOpts{Name: "materializer_staged_bytes", Help: "Bytes of staging files, open and sealed, not yet delivered."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "materializer_backpressure", Help: "1 while consuming is paused because staged bytes exceed max_staged_bytes."}),
	}
	if reg != nil {
		reg.MustRegister(b.m.staged, b.m.active)
	}
	return b
}

// engaged reports whether backpressure holds the consumers.
func (b *backpressure) engaged() bool { return b.active.Load() }

// Run checks the staged bytes four times a second until ctx ends.
func (b *backpressure) Run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.check(ctx)
	}
}

func (b *backpressure) check(ctx context.Context) {
	limit := b.limit.Load()
	staged := b.p.eng.OpenFileBytes() + b.p.outbox.StagedBytes()
	b.m.staged.Set(float64(staged))
	f := b.p.eng.Failing()
	full := f != nil && f.DiskFull
	switch active := b.active.Load(); {
	case !active && full:
		b.set(true)
		b.log.Warn().Str("error", f.Err).Msg("backpressure: the staging disk is full; consuming paused until space returns")
	case !active && staged > limit:
		b.set(true)
		b.log.Warn().Int64("staged_bytes", staged).Int64("max_staged_bytes", limit).
			Msg("backpressure: staged files exceed max_staged_bytes; consuming paused until delivery catches up")
		// Open files count as staged but cannot be delivered until they
		// are sealed: seal them, or a pause could outlast roll_max_age.
		go func() {
			if _, err := b.p.eng.SealAll(ctx); err != nil && ctx.Err() == nil {
				b.log.Error().Err(err).Msg("backpressure: sealing the open files failed")
			}
		}()
	case active && !full && staged < limit/10*8:
		b.set(false)
		b.log.Info().Int64("staged_bytes", staged).Msg("backpressure released: consuming again")
	}
}

// set engages or releases backpressure: every consumer pauses, or every
// consumer not paused by an operator (nor drained) resumes.
func (b *backpressure) set(on bool) {
	p := b.p
	p.mu.Lock()
	defer p.mu.Unlock()
	b.active.Store(on)
	b.m.active.Set(map[bool]float64{true: 1, false: 0}[on])
	for name, c := range p.consumers {
		switch {
		case on:
			c.Pause()
		case !p.held(name):
			c.Resume()
		}
	}
}
