package notify

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"materializer/internal/backoff"
)

// natsOptions are the connection options for a production cluster:
// several URLs, credentials file, TLS with a custom CA and client cert,
// reconnect forever with capped exponential backoff, no buffering while
// disconnected (Publish fails fast instead), state changes logged with
// redacted URLs.
func natsOptions(o Options, log zerolog.Logger, m *metrics) []nats.Option {
	lim := &logLimiter{every: 30 * time.Second, now: o.Now}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(func(attempts int) time.Duration { return backoff.Delay(attempts, o.ReconnectMin, o.ReconnectMax) }),
		nats.ReconnectBufSize(-1),
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ConnectHandler(func(nc *nats.Conn) {
			m.connected.Set(1)
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("connected to NATS")
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			m.connected.Set(0)
			log.Warn().Err(err).Msg("disconnected from NATS; notices wait in the outbox")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			m.connected.Set(1)
			m.reconnects.Inc()
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			if lim.allow() {
				log.Warn().Err(err).Msg("NATS reconnect failed; retrying with backoff")
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			m.connected.Set(0)
			log.Info().Msg("NATS connection closed")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn().Err(err).Msg("NATS error")
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(o.TLSCAFile))
	}
	if o.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(o.TLSCertFile, o.TLSKeyFile))
	}
	return opts
}

// logLimiter lets one log line through per interval.
type logLimiter struct {
	mu    sync.Mutex
	every time.Duration
	now   func() time.Time
	last  time.Time
}

func (l *logLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.now(); l.last.IsZero() || now.Sub(l.last) >= l.every {
		l.last = now
		return true
	}
	return false
}
