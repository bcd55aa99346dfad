package main

import (
	"fmt"
	"reflect"
	"strings"

	"materializer/conf"
)

// reloadPlan is what a SIGHUP does with a new, valid config.
type reloadPlan struct {
	Live    []string         // keys applied to the running daemon
	Restart []string         // keys that changed but take effect only after a restart
	Refused []string         // changes of the state's layout: "key: old → new"
	Added   []conf.EventType // event types to start consuming
}

// liveKeys can change without a restart.
var liveKeys = map[string]bool{
	"daemon.log_level": true, "daemon.admin_token_file": true,
	"storage.roll_max_bytes": true, "storage.roll_max_rows": true, "storage.roll_max_age": true,
	"storage.max_staged_bytes": true, "notify.subject_prefix": true,
}

// refusedKeys would point the daemon at other state.
var refusedKeys = map[string]bool{"daemon.data_dir": true}

// planReload compares two configs. Event types are matched by name: a new
// one is started, a removed one needs a restart, and a change of an existing
// one's partition key, ordering or tables is refused — it would change what
// the stored state means. A plan with refusals must not be applied at all.
func planReload(old, cur *conf.Config) reloadPlan {
	var p reloadPlan
	for _, key := range conf.Diff(old, cur) {
		switch {
		case strings.HasPrefix(key, "event_types"):
		case refusedKeys[key]:
			p.Refused = append(p.Refused, fmt.Sprintf("%s: %q → %q", key, old.Daemon.DataDir, cur.Daemon.DataDir))
		case liveKeys[key]:
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

func (p *reloadPlan) compareEventType(o, n *conf.EventType) {
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
