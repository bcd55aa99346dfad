package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Tail prints the notices of opts.Stream as JSON lines (one notice per
// line, as published) until ctx is done; it then returns nil. It uses an
// ordered consumer, so it leaves no state on the server.
//
// subjectFilter defaults to {prefix}.>; use Subject(prefix, eventType) for
// one event type. from is where to start: "new" (default: only notices
// published from now on), "all", "last" (the newest notice of each
// subject), an RFC 3339 time, or a duration such as "1h" (that long ago).
func Tail(ctx context.Context, opts Options, subjectFilter, from string, w io.Writer) error {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return err
	}
	if subjectFilter == "" {
		subjectFilter = opts.SubjectPrefix + ".>"
	}
	cfg, err := tailStart(from, opts.Now())
	if err != nil {
		return err
	}
	cfg.FilterSubjects = []string{subjectFilter}
	log := opts.Logger.With().Str("component", "notify").Logger()
	nc, err := nats.Connect(strings.Join(splitURLs(opts.URLs), ","), natsOptions(opts, log, newMetrics(nil))...)
	if err != nil {
		return fmt.Errorf("%w: connect %s: %w", ErrUnavailable, redactURLs(opts.URLs), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, opts.Stream, cfg)
	if err != nil {
		return fmt.Errorf("notify: tail stream %s: %w", opts.Stream, err)
	}
	return copyNotices(ctx, cons, w)
}

func copyNotices(ctx context.Context, cons jetstream.Consumer, w io.Writer) error {
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("notify: tail: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	var line bytes.Buffer
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("notify: tail: %w", err)
		}
		line.Reset()
		noticeLine(&line, msg.Subject(), msg.Data())
		if _, err := w.Write(line.Bytes()); err != nil {
			return err
		}
	}
}

// noticeLine writes a body as one compact JSON line; a body that is not
// JSON is wrapped so the output stays JSON lines.
func noticeLine(buf *bytes.Buffer, subject string, data []byte) {
	if err := json.Compact(buf, data); err != nil {
		buf.Reset()
		b, _ := json.Marshal(struct {
			Subject string `json:"subject"`
			Invalid string `json:"invalid_notice"`
		}{subject, string(data)})
		buf.Write(b)
	}
	buf.WriteByte('\n')
}

func tailStart(from string, now time.Time) (jetstream.OrderedConsumerConfig, error) {
	var cfg jetstream.OrderedConsumerConfig
	switch from {
	case "", "new":
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case "all":
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case "last":
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	default:
		t, err := time.Parse(time.RFC3339Nano, from)
		if err != nil {
			d, derr := time.ParseDuration(from)
			if derr != nil || d <= 0 {
				return cfg, fmt.Errorf("%w: from %q: want new, all, last, an RFC 3339 time or a duration", ErrConfig, from)
			}
			t = now.Add(-d)
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &t
	}
	return cfg, nil
}
