package pipeline

import (
	"context"
	"fmt"

	"materializer/state"
)

// Flush closes every open session of the event type (all event types when
// eventType is ""), emits them, seals every open file of it, and returns the
// outbox entries of the files it sealed, once durable. Delivery is the
// deliverer's: wait for these entries there.
func (e *Engine) Flush(ctx context.Context, eventType string) ([]state.Outbox, error) {
	if eventType != "" && e.types[eventType] == nil {
		return nil, fmt.Errorf("pipeline: event type %q is not configured", eventType)
	}
	var sealed []state.Outbox
	err := e.Do(ctx, func() error {
		err := e.runStep(ctx, nil, func(st *step) error {
			st.sealAll = "*"
			if eventType != "" {
				st.sealAll = eventType
			}
			for _, sl := range e.slotList() {
				if eventType == "" || sl.part.EventType == eventType {
					if err := e.closeAll(st, sl); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err == nil && e.lastStep != nil {
			sealed = e.lastStep.sealed
		}
		return err
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
		if err == nil && e.lastStep != nil {
			sealed = e.lastStep.sealed
		}
		return err
	})
	return sealed, err
}
