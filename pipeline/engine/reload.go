package engine

import (
	"context"
	"fmt"
	"time"
)

// Roll is when open staging files are sealed.
type Roll struct {
	MaxBytes int64
	MaxRows  int64 // 0 = no limit
	MaxAge   time.Duration
}

// SetRoll changes the roll limits; files already open roll by the new limits
// from the next step on.
func (e *Engine) SetRoll(ctx context.Context, r Roll) error {
	return e.Do(ctx, func() error {
		e.opts.RollMaxBytes, e.opts.RollMaxRows, e.opts.RollMaxAge = r.MaxBytes, r.MaxRows, r.MaxAge
		return nil
	})
}

// setType adds (et nil: removes) an event type; on the Run goroutine.
func (e *Engine) setType(name string, et *eventType) {
	e.typesMu.Lock()
	defer e.typesMu.Unlock()
	if et == nil {
		delete(e.types, name)
		return
	}
	e.types[name] = et
}

// AddEventType starts applying batches of a new event type (a config
// reload). State the event type left behind earlier must have been shaped
// the same way (its fingerprint is checked, as at start-up).
func (e *Engine) AddEventType(ctx context.Context, t EventType) error {
	return e.Do(ctx, func() error {
		if _, ok := e.types[t.Name]; ok {
			return fmt.Errorf("engine: event type %s is already configured", t.Name)
		}
		et := newEventType(t, e.opts.Limits)
		e.setType(t.Name, et)
		if err := e.checkFingerprints(); err != nil {
			e.setType(t.Name, nil)
			return err
		}
		all, next, err := e.db.Slots()
		if err == nil {
			err = e.loadSlotsOf(et, all, next)
		}
		if err == nil {
			err = e.fillFilter(et.slots)
		}
		if err != nil {
			return fmt.Errorf("%w: loading slots of %s: %w", errBroken, t.Name, err)
		}
		e.publishStatus(nil)
		return nil
	})
}
