package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"materializer/conf"
	"materializer/pipeline/engine"
)

// ReloadPlan is what a reload (SIGHUP) does with a new, valid config.
type ReloadPlan struct {
	Live    []string         // keys applied to the running pipeline
	Restart []string         // keys that changed but take effect only after a restart
	Refused []string         // changes of the state's layout: "key: old → new"
	Added   []conf.EventType // event types to start consuming
}

// ErrReloadRefused: the new config would change what the stored state
// means; nothing of it was applied.
var ErrReloadRefused = errors.New("reload refused: these changes would change the meaning of the stored state")

// liveKey is one config key that changes without a restart: keep copies
// its new value into the running config (so the next reload compares
// against what runs), apply makes the running pipeline use it. A nil apply
// means nothing in the pipeline changes: the daemon applies it (the
// process-wide log level, the admin server's token file, which it re-reads
// on every SIGHUP), or its effect comes with other keys (the event types
// an include pattern adds).
type liveKey struct {
	key   string
	keep  func(run, cur *conf.Config)
	apply func(ctx context.Context, p *Pipeline, cur *conf.Config) error
}

// liveKeys is every key a reload applies.
var liveKeys = []liveKey{
	{"include", func(run, cur *conf.Config) { run.Include = cur.Include }, nil},
	{"daemon.log_level", func(run, cur *conf.Config) { run.Daemon.LogLevel = cur.Daemon.LogLevel }, nil},
	{"daemon.admin_token_file", func(run, cur *conf.Config) { run.Daemon.AdminTokenFile = cur.Daemon.AdminTokenFile }, nil},
	{"storage.roll_max_bytes", func(run, cur *conf.Config) { run.Storage.RollMaxBytes = cur.Storage.RollMaxBytes }, applyRoll},
	{"storage.roll_max_rows", func(run, cur *conf.Config) { run.Storage.RollMaxRows = cur.Storage.RollMaxRows }, applyRoll},
	{"storage.roll_max_age", func(run, cur *conf.Config) { run.Storage.RollMaxAge = cur.Storage.RollMaxAge }, applyRoll},
	{"storage.max_staged_bytes", func(run, cur *conf.Config) { run.Storage.MaxStagedBytes = cur.Storage.MaxStagedBytes }, applyMaxStaged},
	{"notify.subject_prefix", func(run, cur *conf.Config) { run.Notify.SubjectPrefix = cur.Notify.SubjectPrefix }, applySubject},
}

func findLive(key string) *liveKey {
	for i := range liveKeys {
		if liveKeys[i].key == key {
			return &liveKeys[i]
		}
	}
	return nil
}

// refusedKeys would point the daemon at other state.
var refusedKeys = map[string]bool{"daemon.data_dir": true}

// PlanReload compares the running config with a new one. Event types are
// matched by name: a new one is started, a removed one needs a restart, and
// a change of an existing one's partition key, ordering or tables is
// refused — it would change what the stored state means. A plan with
// refusals must not be applied at all.
func PlanReload(old, cur *conf.Config) ReloadPlan {
	var p ReloadPlan
	for _, key := range conf.Diff(old, cur) {
		switch {
		case strings.HasPrefix(key, "event_types"):
		case refusedKeys[key]:
			p.Refused = append(p.Refused, fmt.Sprintf("%s: %q → %q", key, old.Daemon.DataDir, cur.Daemon.DataDir))
		case findLive(key) != nil:
			p.Live = append(p.Live, key)
		default:
			p.Restart = append(p.Restart, key)
		}
	}
	olds := map[string]*conf.EventType{}
	for i := range old.EventTypes {
		olds[old.EventTypes[i].Name] = &old.EventTypes[i]
	}
	seen := map[string]bool{}
	for i := range cur.EventTypes {
		n := &cur.EventTypes[i]
		seen[n.Name] = true
		o, ok := olds[n.Name]
		if !ok {
			p.Added = append(p.Added, *n)
			p.Live = append(p.Live, "event_types[name="+n.Name+"] (added)")
			continue
		}
		p.compareEventType(o, n)
	}
	for name := range olds {
		if !seen[name] {
			p.Restart = append(p.Restart, "event_types[name="+name+"] (removed)")
		}
	}
	return p
}

func (p *ReloadPlan) compareEventType(o, n *conf.EventType) {
	key := "event_types[name=" + n.Name + "]."
	refuse := func(field string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			p.Refused = append(p.Refused, fmt.Sprintf("%s%s: %v → %v", key, field, render(a), render(b)))
		}
	}
	refuse("partition_key", o.PartitionKey, n.PartitionKey)
	refuse("ordering_key", o.OrderingKey, n.OrderingKey)
	refuse("ordering", o.Ordering, n.Ordering)
	refuse("tables", o.TableSpecs(), n.TableSpecs())
	restart := func(field string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			p.Restart = append(p.Restart, key+field)
		}
	}
	restart("session_gap", o.SessionGap, n.SessionGap)
	restart("session_max", o.SessionMax, n.SessionMax)
	restart("key_retention", o.KeyRetention, n.KeyRetention)
	restart("eid_path", o.EIDPath, n.EIDPath)
	restart("occurred_at_path", o.OccurredAtPath, n.OccurredAtPath)
}

// render prints a value for a refusal message (tables compactly).
func render(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case []string:
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%+v", v)
}

// Config returns the running config: the start-up config with the live
// keys of every applied reload.
func (p *Pipeline) Config() *conf.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Reload plans a reload against the running config and applies it: the
// live keys of the table above, then the added event types. A plan with
// refusals is returned with ErrReloadRefused and changes nothing. Changes
// that need a restart are only named.
func (p *Pipeline) Reload(ctx context.Context, cur *conf.Config) (ReloadPlan, error) {
	run := p.Config()
	plan := PlanReload(run, cur)
	if len(plan.Refused) > 0 {
		return plan, ErrReloadRefused
	}
	next := *run
	for _, key := range plan.Live {
		lk := findLive(key)
		if lk == nil {
			continue // an added event type
		}
		if lk.apply != nil {
			if !p.recovered.Load() {
				return plan, fmt.Errorf("%s: %w", key, ErrNotRunning)
			}
			if err := lk.apply(ctx, p, cur); err != nil {
				return plan, fmt.Errorf("%s: %w", key, err)
			}
		}
		lk.keep(&next, cur)
	}
	for i := range plan.Added {
		if !p.recovered.Load() {
			return plan, ErrNotRunning
		}
		if err := p.addEventType(ctx, &plan.Added[i]); err != nil {
			return plan, err
		}
		next.EventTypes = append(append([]conf.EventType{}, next.EventTypes...), plan.Added[i])
	}
	p.mu.Lock()
	p.cfg = &next
	p.mu.Unlock()
	return plan, nil
}

func applyRoll(ctx context.Context, p *Pipeline, cur *conf.Config) error {
	s := cur.Storage
	return p.eng.SetRoll(ctx, engine.Roll{MaxBytes: s.RollMaxBytes.Bytes(), MaxRows: int64(s.RollMaxRows), MaxAge: s.RollMaxAge.Duration()})
}

func applyMaxStaged(_ context.Context, p *Pipeline, cur *conf.Config) error {
	p.bp.limit.Store(cur.Storage.MaxStagedBytes.Bytes())
	return nil
}

// applySubject publishes further notices under a new subject prefix, on a
// new connection whose stream gets the new subject.
func applySubject(ctx context.Context, p *Pipeline, cur *conf.Config) error {
	if p.publisher == nil {
		return nil // notices are off
	}
	pub, err := p.connectNotify(ctx, cur.Notify, nil) // its metrics stay unregistered: the first connection's are
	if err != nil {
		return err
	}
	p.mu.Lock()
	old := p.publisher
	p.publisher = pub
	p.mu.Unlock()
	p.outbox.SetAnnouncer(pub)
	p.group.Go(func() error { p.ensureStream(p.groupCtx, pub); return nil })
	old.Close()
	return nil
}

// addEventType starts consuming a new event type: the engine learns it
// first, then its consumer starts.
func (p *Pipeline) addEventType(ctx context.Context, et *conf.EventType) error {
	pet, c, err := p.compile(et)
	if err != nil {
		return err
	}
	if err := p.eng.AddEventType(ctx, pet); err != nil {
		return fmt.Errorf("event type %s: %w", et.Name, err)
	}
	p.ckpt.EventTypeAdded(CheckpointEventType(pet))
	p.mu.Lock()
	p.consumers[et.Name] = c
	if p.held(et.Name) {
		c.Pause()
	}
	p.mu.Unlock()
	p.startConsumer(et.Name, c)
	p.plog.Info().Str("event_type", et.Name).Msg("reload: consuming a new event type")
	return nil
}
