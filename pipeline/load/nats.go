package load

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"materializer/conf"
	"materializer/internal/backoff"
)

// connectNATS connects to the [notify] servers with its credentials and
// TLS, reconnecting forever with backoff; a server that is down is not an
// error (the consumer set-up retries).
func (l *Loader) connectNATS() (*nats.Conn, error) {
	n := l.cfg.Notify
	opts := []nats.Option{
		nats.Name("materializer-load"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			return backoff.Delay(attempts, 250*time.Millisecond, 30*time.Second)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own close
				l.log.Warn().Err(err).Msg("disconnected from NATS; loading waits")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
	}
	if n.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(n.CredentialsFile))
	}
	if n.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLSCAFile))
	}
	if n.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(n.TLSCertFile, n.TLSKeyFile))
	}
	nc, err := nats.Connect(n.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("load: connect to NATS: %w", err)
	}
	return nc, nil
}

// consumerConfig is the durable consumer of load.durable: every notice of
// {subject_prefix}.> from the start of the stream, explicit acks, never
// given up on by the server (the loader parks bad files itself).
func consumerConfig(cfg *conf.Config, ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       cfg.Load.Durable,
		Description:   "materializer load: notices into PostgreSQL schema " + cfg.Load.Schema,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: max(1000, 4*cfg.Load.BatchFiles),
		FilterSubject: cfg.Notify.SubjectPrefix + ".>",
	}
}

// consumer creates (or updates) the durable consumer, waiting for the
// stream: the daemon creates it with the first notice.
func (l *Loader) consumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, jetstream.Stream, error) {
	b := backoff.Backoff{Min: l.opts.OutageMin, Max: l.opts.OutageMax}
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := js.Stream(cctx, l.cfg.Notify.Stream)
		var c jetstream.Consumer
		if err == nil {
			c, err = s.CreateOrUpdateConsumer(cctx, consumerConfig(l.cfg, l.opts.AckWait))
		}
		cancel()
		if err == nil {
			return c, s, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		what := "NATS JetStream unavailable"
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			what = "waiting for the notice stream " + l.cfg.Notify.Stream + " (the daemon creates it)"
		}
		l.outage(fmt.Errorf("load: %s: %w", what, err))
		if !backoff.Sleep(ctx, b.Next(0)) {
			return nil, nil, ctx.Err()
		}
	}
}
