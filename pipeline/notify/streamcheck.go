package notify

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Settings of an existing stream that EnsureStream checks; the values of
// the setting label of materializer_notify_stream_mismatch.
var streamSettings = []string{"subjects", "sealed", "no_ack", "mirror", "replicas", "duplicate_window", "storage", "retention"}

// finding is a setting of an existing stream that differs from what the
// daemon would create; msg is what to log ("" for a refusal, which the
// error says).
type finding struct {
	setting string
	msg     string
}

// inspectStream decides what to do with an existing stream. refuse is set
// (an ErrStreamMismatch) when no notice could be stored and acknowledged
// there: a sealed stream, a mirror, a stream that does not acknowledge
// publishes. findings are the settings that work but differ from the
// notify options — fewer replicas, a shorter duplicate window, memory
// storage, a retention that removes notices once consumed — and are only
// reported: the stream is the operator's, and changing it is theirs to
// decide. The subjects are checked (and added) by the caller.
func inspectStream(cfg jetstream.StreamConfig, o Options) (findings []finding, refuse error) {
	var refusals []string
	if cfg.Sealed {
		refusals = append(refusals, "is sealed (it takes no more messages)")
		findings = append(findings, finding{"sealed", ""})
	}
	if cfg.Mirror != nil {
		refusals = append(refusals, "is a mirror of "+cfg.Mirror.Name+" (it takes no publishes)")
		findings = append(findings, finding{"mirror", ""})
	}
	if cfg.NoAck {
		refusals = append(refusals, "does not acknowledge publishes (no_ack), so no notice could be confirmed")
		findings = append(findings, finding{"no_ack", ""})
	}
	if len(refusals) > 0 {
		refuse = fmt.Errorf("%w: stream %s %s: notices wait in the outbox until the stream is fixed "+
			"or notify.stream names another one", ErrStreamMismatch, cfg.Name, strings.Join(refusals, "; "))
	}
	return append(findings, reportedSettings(cfg, o)...), refuse
}

func reportedSettings(cfg jetstream.StreamConfig, o Options) []finding {
	var out []finding
	if r := max(cfg.Replicas, 1); r < o.Replicas {
		out = append(out, finding{"replicas", fmt.Sprintf("stream has %d replicas, notify.stream_replicas is %d: "+
			"losing a NATS server can make notices unavailable or lose them; raise them with "+
			"`nats stream edit %s --replicas %d`", r, o.Replicas, cfg.Name, o.Replicas)})
	}
	if cfg.Duplicates < o.DuplicateWindow {
		out = append(out, finding{"duplicate_window", fmt.Sprintf("stream de-duplicates Msg-Ids for %s, notify.duplicate_window is %s: "+
			"a notice repeated after a longer outage is stored twice", cfg.Duplicates, o.DuplicateWindow)})
	}
	if cfg.Storage != jetstream.FileStorage {
		out = append(out, finding{"storage", "stream keeps notices in memory: a restart of NATS loses them"})
	}
	if cfg.Retention != jetstream.LimitsPolicy {
		out = append(out, finding{"retention", fmt.Sprintf("stream retention is %s: a notice is removed once consumed, "+
			"so a loader that starts later, or a second loader, misses it", cfg.Retention)})
	}
	return out
}
