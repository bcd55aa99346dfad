package nakadi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/internal/redact"
)

// ErrConfig is wrapped by every Config.Validate problem.
var ErrConfig = errors.New("nakadi: invalid config")

// Config configures a Consumer. Zero values take the defaults named below;
// the daemon maps its [nakadi] section onto it.
type Config struct {
	// URL is Nakadi's base URL (http or https).
	URL string
	// TokenFile holds the OAuth2 bearer token (optional). It is re-read when
	// its modification time or size changes and after a 401. The token is
	// never logged nor put into errors or the status.
	TokenFile string

	OwningApplication string
	ConsumerGroup     string   // default "default" (Nakadi's)
	EventTypes        []string // at least one
	ReadFrom          string   // "begin" or "end" (default); used only when the subscription is created

	BatchLimit        int           // events per batch; default 500
	BatchFlushTimeout time.Duration // > 0; default 5s
	// MaxUncommittedEvents is Nakadi's window over the whole stream; default
	// 100 × BatchLimit (at least 1000), well above BatchLimit × partitions.
	MaxUncommittedEvents int
	// CommitTimeout is at most 60s (Nakadi's maximum and default).
	CommitTimeout time.Duration
	// CommitInterval is how often durable cursors are committed; default
	// min(2s, CommitTimeout/6); at most CommitTimeout/3. A commit also
	// starts early when half of MaxUncommittedEvents waits for one.
	CommitInterval time.Duration
	// StreamTimeout is sent when > 0 (else Nakadi's 1 h ± 10 min applies).
	StreamTimeout time.Duration
	// StatsInterval is how often /stats is polled for lag and assignment;
	// default 30s; negative turns polling off.
	StatsInterval time.Duration
	// StatsFastInterval is how often /stats is polled while a partition
	// may be moving (moves.go); default 1s.
	StatsFastInterval time.Duration
	// IdleTimeout ends a stream that sent no byte for that long; default
	// max(BatchFlushTimeout, 2×CommitTimeout) + 10s (a stream without
	// partitions, or in its closing window, is silent that long).
	IdleTimeout time.Duration
	// DrainTimeout is how long Run keeps committing after ctx ends; default 5s.
	DrainTimeout time.Duration
	// BackoffMin and BackoffMax bound the reconnect backoff (exponential,
	// with jitter); defaults 200ms and 30s. Retry-After is honoured up to
	// 5 × BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// MaxLineBytes caps one stream line; default 256 MiB.
	MaxLineBytes int
	// ReadBufferBytes is a stream's read buffer (4 KiB..64 KiB, default
	// 32 KiB): keep-alives and short batch lines are read in place, a
	// longer line goes to a buffer of its own that its batch takes.
	ReadBufferBytes int
	// FractionalSeconds sends second-valued stream parameters with a
	// fraction ("0.05") instead of rounding them up to whole seconds. Real
	// Nakadi accepts integers only: this is for the emulator (fast tests).
	FractionalSeconds bool
	// RetryFatal keeps retrying (with BackoffMax, readiness false) after
	// 403/404 instead of returning from Run.
	RetryFatal bool

	// Buffers bounds the memory of batches read and not yet handed out,
	// shared by the consumers of a daemon; nil: no bound.
	Buffers *Buffers
	// Transport is the HTTP transport of requests (subscription, cursors,
	// commits, stats); default a clone of http.DefaultTransport.
	// StreamTransport is that of streams (default Transport): a daemon
	// with many event types bounds the connections of requests but not
	// of streams, one per event type. No overall client timeout applies
	// to streams.
	Transport       http.RoundTripper
	StreamTransport http.RoundTripper
	// RequestTimeout bounds every non-stream request and the wait for a
	// stream's response headers; default 30s.
	RequestTimeout time.Duration

	Now        func() time.Time // default time.Now
	Logger     zerolog.Logger
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
}

// withDefaults returns the config with defaults filled in.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.ConsumerGroup == "" {
		c.ConsumerGroup = "default"
	}
	if c.ReadFrom == "" {
		c.ReadFrom = "end"
	}
	if c.BatchLimit == 0 {
		c.BatchLimit = 500
	}
	if c.MaxUncommittedEvents == 0 {
		c.MaxUncommittedEvents = max(100*c.BatchLimit, 1000)
	}
	def(&c.BatchFlushTimeout, 5*time.Second)
	def(&c.CommitTimeout, 60*time.Second)
	def(&c.CommitInterval, min(2*time.Second, c.CommitTimeout/6))
	def(&c.StatsInterval, 30*time.Second)
	def(&c.StatsFastInterval, time.Second)
	def(&c.IdleTimeout, max(c.BatchFlushTimeout, 2*c.CommitTimeout)+10*time.Second)
	def(&c.DrainTimeout, 5*time.Second)
	def(&c.BackoffMin, 200*time.Millisecond)
	def(&c.BackoffMax, 30*time.Second)
	def(&c.RequestTimeout, 30*time.Second)
	if c.ReadBufferBytes == 0 {
		c.ReadBufferBytes = readBufferSize
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = defaultMaxLine
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if c.StreamTransport == nil {
		c.StreamTransport = c.Transport
	}
	return c
}

// Validate reports every problem of a config (after defaults), each
// wrapping ErrConfig.
func (c Config) Validate() error {
	_, err := c.checked()
	return err
}

// checked returns the config with its defaults, or every problem.
func (c Config) checked() (Config, error) {
	c = c.withDefaults()
	return c, c.validate()
}

// subscription is what identifies the config's subscription.
func (c Config) subscription() subscription {
	return subscription{OwningApplication: c.OwningApplication, EventTypes: c.EventTypes, ConsumerGroup: c.ConsumerGroup, ReadFrom: c.ReadFrom}
}

// validate checks a config whose defaults are applied.
func (c Config) validate() error {
	var errs []error
	bad := func(key string, v any, why string) {
		errs = append(errs, fmt.Errorf("%w: %s = %v: %s", ErrConfig, key, v, why))
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url", redact.URL(c.URL), "want an http(s) URL")
	}
	if c.OwningApplication == "" {
		bad("owning_application", `""`, "required")
	}
	if len(c.EventTypes) == 0 {
		bad("event_types", "[]", "at least one")
	}
	if c.ReadFrom != "begin" && c.ReadFrom != "end" {
		bad("read_from", c.ReadFrom, "begin or end")
	}
	if c.BatchLimit < 1 {
		bad("batch_limit", c.BatchLimit, "at least 1")
	}
	if c.MaxUncommittedEvents < c.BatchLimit {
		bad("max_uncommitted_events", c.MaxUncommittedEvents, "at least batch_limit")
	}
	if c.BatchFlushTimeout <= 0 {
		bad("batch_flush_timeout", c.BatchFlushTimeout, "must be positive")
	}
	if c.CommitTimeout <= 0 || c.CommitTimeout > 60*time.Second {
		bad("commit_timeout", c.CommitTimeout, "in (0, 60s]")
	}
	if c.CommitInterval <= 0 || c.CommitInterval > c.CommitTimeout/3 {
		bad("commit_interval", c.CommitInterval, "in (0, commit_timeout/3]")
	}
	if c.StatsFastInterval <= 0 {
		bad("stats_fast_interval", c.StatsFastInterval, "must be positive")
	}
	if c.IdleTimeout <= max(c.BatchFlushTimeout, 2*c.CommitTimeout) {
		bad("idle_timeout", c.IdleTimeout, "must exceed max(batch_flush_timeout, 2×commit_timeout)")
	}
	if c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		bad("backoff", fmt.Sprintf("%v..%v", c.BackoffMin, c.BackoffMax), "want 0 < min ≤ max")
	}
	if c.StreamTimeout < 0 || c.StreamTimeout > 4200*time.Second {
		bad("stream_timeout", c.StreamTimeout, "in [0, 4200s]")
	}
	return errors.Join(errs...)
}

// seconds renders a duration as a stream parameter.
func (c Config) seconds(d time.Duration) string {
	if c.FractionalSeconds {
		return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	}
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

// streamQuery is the query of GET /subscriptions/{id}/events.
func (c Config) streamQuery() url.Values {
	q := url.Values{}
	q.Set("batch_limit", strconv.Itoa(c.BatchLimit))
	q.Set("batch_flush_timeout", c.seconds(c.BatchFlushTimeout))
	q.Set("max_uncommitted_events", strconv.Itoa(c.MaxUncommittedEvents))
	q.Set("commit_timeout", c.seconds(c.CommitTimeout))
	if c.StreamTimeout > 0 {
		q.Set("stream_timeout", c.seconds(c.StreamTimeout))
	}
	return q
}
