package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// errCodeStreamNotMatch is JetStream's "expected stream does not match":
// another stream captured the subject.
const errCodeStreamNotMatch jetstream.ErrorCode = 10060

// Publisher publishes notices to JetStream. It is safe for concurrent use.
type Publisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	opts    Options
	log     zerolog.Logger
	metrics *metrics

	ensureMu     sync.Mutex // guards the three below; held while the stream is checked
	ensured      bool       // the stream was found usable …
	checkedAt    time.Time  // … at this time
	lastFindings string     // what the last check reported
}

// Connect connects to NATS. A server that is down is not an error: the
// connection keeps retrying in the background (forever, with backoff) and
// Publish returns ErrUnavailable meanwhile. Bad options and unreadable
// credential or TLS files are errors (ErrConfig).
func Connect(ctx context.Context, opts Options) (*Publisher, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	p := &Publisher{
		opts:    opts,
		log:     opts.Logger.With().Str("component", "notify").Logger(),
		metrics: newMetrics(opts.Registerer),
	}
	nopts := append(natsOptions(opts, p.log, p.metrics), nats.RetryOnFailedConnect(true))
	nc, err := nats.Connect(strings.Join(splitURLs(opts.URLs), ","), nopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %w", ErrConfig, redactURLs(opts.URLs), err)
	}
	if !nc.IsConnected() {
		p.log.Warn().Err(nc.LastError()).Str("servers", redactURLs(opts.URLs)).
			Msg("NATS not reachable yet; retrying in the background")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: jetstream: %w", ErrConfig, err)
	}
	p.nc, p.js = nc, js
	return p, nil
}

// Connected reports whether the connection to a NATS server is up.
func (p *Publisher) Connected() bool { return p.nc.IsConnected() }

// Close closes the connection; later Publish calls fail with ErrClosed.
func (p *Publisher) Close() { p.nc.Close() }

// PublishNotice publishes n on Subject(prefix, n.EventType) with
// Nats-Msg-Id n.ID.
func (p *Publisher) PublishNotice(ctx context.Context, n Notice) error {
	return p.Publish(ctx, Subject(p.opts.SubjectPrefix, n.EventType), n.ID, n.Marshal())
}

// Publish sends body with Nats-Msg-Id msgID and waits for the JetStream
// ack. An ack that does not come within AckTimeout is retried with the
// same Msg-Id (PublishAttempts in all); an ack reporting a duplicate is
// success. While NATS is unreachable it returns ErrUnavailable at once.
// Errors are retryable unless errors.Is(err, ErrPermanent).
func (p *Publisher) Publish(ctx context.Context, subject, msgID string, body []byte) error {
	start := p.opts.Now()
	err := p.publish(ctx, subject, msgID, body)
	p.metrics.duration.Observe(p.opts.Now().Sub(start).Seconds())
	switch {
	case err == nil:
	case errors.Is(err, ErrPermanent):
		p.metrics.errors.WithLabelValues("permanent").Inc()
	default:
		p.metrics.errors.WithLabelValues("unavailable").Inc()
	}
	return err
}

func (p *Publisher) publish(ctx context.Context, subject, msgID string, body []byte) error {
	if err := p.checkArgs(subject, msgID); err != nil {
		return err
	}
	var err error
	for attempt := 1; attempt <= p.opts.PublishAttempts; attempt++ {
		if attempt > 1 {
			p.metrics.retries.Inc()
		}
		if err := p.usable(); err != nil {
			return err
		}
		if err := p.ensure(ctx); err != nil { // again after "no responders"
			return err
		}
		var retry bool
		if retry, err = p.publishOnce(ctx, subject, msgID, body); !retry {
			return err
		}
	}
	return err
}

// publishOnce sends once; retry says whether sending again with the same
// Msg-Id may help (no ack in time, no stream responded).
func (p *Publisher) publishOnce(ctx context.Context, subject, msgID string, body []byte) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: body}
	ack, err := p.js.PublishMsg(actx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(p.opts.Stream))
	if err == nil {
		if ack.Duplicate {
			p.metrics.published.WithLabelValues("duplicate").Inc()
		} else {
			p.metrics.published.WithLabelValues("new").Inc()
		}
		return false, nil
	}
	if ctx.Err() != nil {
		return false, fmt.Errorf("notify: publish %s: %w", msgID, ctx.Err())
	}
	return p.classify(msgID, err)
}

func (p *Publisher) classify(msgID string, err error) (retry bool, _ error) {
	wrapped := func(kind error) error { return fmt.Errorf("%w: publish %s: %w", kind, msgID, err) }
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		p.log.Debug().Str("id", msgID).Msg("no JetStream ack in time; sending again with the same Msg-Id")
		return true, wrapped(ErrUnavailable)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		p.forget() // the stream may have been deleted: ensure it again
		return true, wrapped(ErrUnavailable)
	case errors.Is(err, nats.ErrConnectionClosed):
		return false, wrapped(ErrClosed)
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject):
		return false, permanent(wrapped(ErrConfig))
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamNotMatch:
		return false, wrapped(ErrStreamMismatch)
	}
	return false, wrapped(ErrUnavailable)
}

// usable fails fast while the connection is down: no buffering, the
// notice stays in the caller's outbox.
func (p *Publisher) usable() error {
	switch {
	case p.nc.IsClosed():
		return ErrClosed
	case !p.nc.IsConnected():
		return fmt.Errorf("%w: not connected (%s)", ErrUnavailable, p.nc.Status())
	}
	return nil
}

func (p *Publisher) checkArgs(subject, msgID string) error {
	if err := checkSubject(subject); err != nil {
		return err
	}
	if !strings.HasPrefix(subject, p.opts.SubjectPrefix+".") {
		return fmt.Errorf("%w: subject %q is outside %s.>", ErrConfig, subject, p.opts.SubjectPrefix)
	}
	if msgID == "" {
		return fmt.Errorf("%w: empty Msg-Id", ErrConfig)
	}
	return nil
}
