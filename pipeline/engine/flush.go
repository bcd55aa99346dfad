package engine

import (
	"context"
	"fmt"
	"slices"

	"materializer/state"
)

// Flush closes every open session of the event type (all event types when
// eventType is ""), emits them, seals every open file of it, and returns the
// outbox entries of the files it sealed, once durable. Delivery is the
// deliverer's: wait for these entries there.
func (e *Engine) Flush(ctx context.Context, eventType string) ([]state.Outbox, error) {
	if eventType != "" && e.eventType(eventType) == nil {
		return nil, fmt.Errorf("engine: event type %q is not configured", eventType)
	}
	var sealed []state.Outbox
	err := e.Do(ctx, func() error {
		var err error
		sealed, err = e.flush(ctx, eventType)
		return err
	})
	if err != nil {
		return nil, err // maybe ctx's, with the flush still running: sealed is not ours to read
	}
	return sealed, nil
}

// flush runs, on the engine goroutine, the steps of a flush: sessions close
// at most StepEvents per step (memory stays bounded however many are open),
// then a last step seals the files.
func (e *Engine) flush(ctx context.Context, eventType string) ([]state.Outbox, error) {
	in := func(sl *slot) bool { return eventType == "" || sl.part.EventType == eventType }
	for _, sl := range e.slotList() {
		if in(sl) {
			sl.closing = true
		}
	}
	var sealed []state.Outbox
	run := func(extra func(*step) error) error {
		if err := e.runStep(ctx, nil, extra); err != nil {
			return err
		}
		sealed = append(sealed, e.lastSealed...)
		return nil
	}
	for slices.ContainsFunc(e.slotList(), func(sl *slot) bool { return in(sl) && sl.closing }) {
		if err := run(nil); err != nil {
			return nil, err
		}
	}
	err := run(func(st *step) error {
		st.sealAll = "*"
		if eventType != "" {
			st.sealAll = eventType
		}
		return nil
	})
	return sealed, err
}

// SealAll seals every open staging file now, without closing sessions, and
// returns the sealed files' outbox entries. Backpressure uses it: open files
// count as staged bytes but cannot be delivered until they are sealed.
func (e *Engine) SealAll(ctx context.Context) ([]state.Outbox, error) {
	var sealed []state.Outbox
	err := e.Do(ctx, func() error {
		err := e.runStep(ctx, nil, func(st *step) error {
			st.sealAll = "*"
			return nil
		})
		if err == nil {
			sealed = e.lastSealed
		}
		return err
	})
	if err != nil {
		return nil, err // maybe ctx's, with the step still running: sealed is not ours to read
	}
	return sealed, nil
}
