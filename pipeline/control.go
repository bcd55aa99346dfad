package pipeline

import (
	"context"
	"fmt"
	"time"

	"materializer/checkpoint"
	"materializer/pipeline/outbox"
)

// FlushResult is the answer of a flush (POST /v1/flush): the files it
// sealed, each once delivered.
type FlushResult struct {
	EventType string             `json:"event_type"` // "" = all
	Files     []outbox.Delivered `json:"files"`
}

// Flush closes the sessions of one event type (all when ""), seals its
// files and waits until they are delivered.
func (p *Pipeline) Flush(ctx context.Context, eventType string) (FlushResult, error) {
	res := FlushResult{EventType: eventType, Files: []outbox.Delivered{}}
	if err := p.running(eventType); err != nil {
		return res, err
	}
	start := time.Now()
	sealed, err := p.eng.Flush(ctx, eventType)
	if err != nil {
		return res, err
	}
	closed := time.Now()
	keys := make([]string, len(sealed))
	for i, o := range sealed {
		keys[i] = o.Key
	}
	delivered, err := p.outbox.Wait(ctx, eventType, keys)
	if err != nil {
		return res, err
	}
	p.plog.Info().Str("event_type", eventType).Int("files", len(delivered)).Stringer("sealed_in", closed.Sub(start)).
		Stringer("delivered_in", time.Since(closed)).Msg("flushed")
	res.Files = delivered
	return res, nil
}

// running checks that the pipeline recovered and knows the event type
// ("" = every event type).
func (p *Pipeline) running(eventType string) error {
	if !p.recovered.Load() {
		return ErrNotRunning
	}
	if eventType == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.consumers[eventType] == nil {
		return fmt.Errorf("%w: %s", ErrUnknownEventType, eventType)
	}
	return nil
}

// Pause stops consuming one event type until Resume.
func (p *Pipeline) Pause(_ context.Context, eventType string) error {
	return p.setPaused(eventType, true)
}

// Resume restarts consuming one event type (unless backpressure or a
// drain holds it).
func (p *Pipeline) Resume(_ context.Context, eventType string) error {
	return p.setPaused(eventType, false)
}

func (p *Pipeline) setPaused(eventType string, paused bool) error {
	if eventType == "" {
		return ErrUnknownEventType
	}
	if err := p.running(eventType); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.consumers[eventType]
	if paused {
		p.paused[eventType] = true
		c.Pause()
		p.plog.Info().Str("event_type", eventType).Msg("paused by operator")
		return nil
	}
	delete(p.paused, eventType)
	if !p.held(eventType) {
		c.Resume()
	}
	p.plog.Info().Str("event_type", eventType).Msg("resumed by operator")
	return nil
}

// TakeCheckpoint takes a checkpoint now (POST /v1/checkpoints).
func (p *Pipeline) TakeCheckpoint(ctx context.Context) (*checkpoint.Result, error) {
	if !p.recovered.Load() {
		return nil, ErrNotRunning
	}
	return p.ckpt.Take(ctx)
}

// Checkpoints lists the checkpoints (GET /v1/checkpoints).
func (p *Pipeline) Checkpoints(ctx context.Context) ([]checkpoint.Info, error) {
	if !p.recovered.Load() {
		return nil, ErrNotRunning
	}
	return p.ckpt.List(ctx)
}
