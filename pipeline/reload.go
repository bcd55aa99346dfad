package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/conf"
	"materializer/pipeline"
	"materializer/pipeline/notify"
)

// Reload applies a reload plan's live changes to the running pipeline: roll
// limits, the staged-bytes limit, the notice subject prefix, new event
// types. It is called only for plans without refusals.
func (e *engine) Reload(ctx context.Context, cur *conf.Config, plan reloadPlan) error {
	if !e.recovered.Load() {
		return errNotRunning
	}
	var roll, subject bool
	for _, k := range plan.Live {
		switch k {
		case "storage.roll_max_bytes", "storage.roll_max_rows", "storage.roll_max_age":
			roll = true
		case "storage.max_staged_bytes":
			e.maxStaged.Store(cur.Storage.MaxStagedBytes.Bytes())
		case "notify.subject_prefix":
			subject = true
		}
	}
	if roll {
		s := cur.Storage
		if err := e.eng.SetRoll(ctx, pipeline.Roll{MaxBytes: s.RollMaxBytes.Bytes(), MaxRows: int64(s.RollMaxRows), MaxAge: s.RollMaxAge.Duration()}); err != nil {
			return err
		}
	}
	if subject {
		if err := e.switchSubject(ctx, cur.Notify); err != nil {
			return err
		}
	}
	for i := range plan.Added {
		if err := e.addEventType(ctx, &plan.Added[i]); err != nil {
			return err
		}
	}
	return nil
}

// switchSubject publishes further notices under a new subject prefix, on a
// new connection whose stream gets the new subject.
func (e *engine) switchSubject(ctx context.Context, n conf.Notify) error {
	if e.publisher == nil {
		return nil // notices are off
	}
	p, err := e.connectNotify(ctx, n, nil) // its metrics stay unregistered: the first connection's are
	if err != nil {
		return err
	}
	old := e.publisher
	e.mu.Lock()
	e.publisher = p
	e.mu.Unlock()
	e.deliverer.SetAnnouncer(p)
	e.group.Go(func() error { e.ensureStream(e.groupCtx, p); return nil })
	old.Close()
	return nil
}

// addEventType starts consuming a new event type: the engine learns it
// first, then its consumer starts.
func (e *engine) addEventType(ctx context.Context, et *conf.EventType) error {
	pet, err := compileEventType(et, e.csv)
	if err != nil {
		return err
	}
	c, err := e.newConsumer(et.Name)
	if err != nil {
		return err
	}
	pet.Durable = c.Durable
	if err := e.eng.AddEventType(ctx, pet); err != nil {
		return fmt.Errorf("event type %s: %w", et.Name, err)
	}
	if e.ckpt != nil {
		e.ckpt.EventTypeAdded(pet)
	}
	e.mu.Lock()
	e.consumers[et.Name] = c
	e.names = append(e.names, et.Name)
	if e.pressured {
		c.Pause()
	}
	e.mu.Unlock()
	e.group.Go(func() error {
		if err := c.Run(e.groupCtx, e.in); err != nil {
			return fmt.Errorf("consumer %s: %w", et.Name, err)
		}
		return nil
	})
	e.plog.Info().Str("event_type", et.Name).Msg("reload: consuming a new event type")
	return nil
}

// connectNotify connects a notice publisher.
func (e *engine) connectNotify(ctx context.Context, n conf.Notify, reg prometheus.Registerer) (*notify.Publisher, error) {
	opts := notifyOptions(n, e.log)
	opts.Registerer, opts.Now = reg, e.now
	return notify.Connect(ctx, opts)
}

// notifyOptions are the [notify] section's options (the daemon's publisher
// and `materializer notices` connect alike).
func notifyOptions(n conf.Notify, log zerolog.Logger) notify.Options {
	return notify.Options{
		URLs: n.NATSURL, CredsFile: n.CredentialsFile, TLSCAFile: n.TLSCAFile, TLSCertFile: n.TLSCertFile,
		TLSKeyFile: n.TLSKeyFile, SubjectPrefix: n.SubjectPrefix, Stream: n.Stream,
		DuplicateWindow: n.DuplicateWindow.Duration(), AckTimeout: n.PublishTimeout.Duration(), Logger: log,
	}
}
