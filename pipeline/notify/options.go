package notify

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Defaults of Options.
const (
	DefaultSubjectPrefix   = "materializer.files"
	DefaultStream          = "MATERIALIZER_FILES"
	DefaultDuplicateWindow = 2 * time.Hour
	MinDuplicateWindow     = time.Hour
	DefaultMaxAge          = 30 * 24 * time.Hour
)

// Options configure Connect and Tail.
type Options struct {
	// URLs of the NATS servers, comma-separated (nats://, tls://); a
	// cluster's other servers are also learnt from the server.
	URLs string
	// CredsFile is a NATS credentials file (user JWT + NKey seed).
	CredsFile string
	// TLSCAFile verifies the servers (custom CA); TLSCertFile/TLSKeyFile
	// are the client certificate when the servers require one. Setting any
	// of them requires TLS.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string
	// SubjectPrefix of notice subjects (default materializer.files).
	SubjectPrefix string
	// Stream that captures {SubjectPrefix}.> (default MATERIALIZER_FILES).
	Stream string
	// DuplicateWindow of a stream created by EnsureStream (default 2h, at
	// least 1h): JetStream drops a repeated Msg-Id inside it.
	DuplicateWindow time.Duration
	// MaxAge of a stream created by EnsureStream (default 30 days; < 0:
	// keep notices forever).
	MaxAge time.Duration
	// Replicas of a stream created by EnsureStream (1..5, default 1; 3 on
	// a cluster); an existing stream with fewer is reported.
	Replicas int
	// AckTimeout bounds the wait for one JetStream ack or API reply
	// (default 5s);
	// PublishAttempts is how often Publish sends with the same Msg-Id
	// before it gives up with ErrUnavailable (default 3).
	AckTimeout      time.Duration
	PublishAttempts int
	// ReconnectMin and ReconnectMax bound the reconnect backoff (defaults
	// 250ms and 30s); reconnects never stop.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// Name of the connection as servers show it (default materializer).
	Name string

	Logger     zerolog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Now        func() time.Time      // default time.Now
}

func (o Options) withDefaults() Options {
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = DefaultSubjectPrefix
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.PublishAttempts == 0 {
		o.PublishAttempts = 3
	}
	if o.ReconnectMin == 0 {
		o.ReconnectMin = 250 * time.Millisecond
	}
	if o.ReconnectMax == 0 {
		o.ReconnectMax = 30 * time.Second
	}
	if o.Name == "" {
		o.Name = "materializer"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// validate reports the first unusable option; file contents never appear
// in its errors.
func (o Options) validate() error {
	if strings.TrimSpace(o.URLs) == "" {
		return fmt.Errorf("%w: no NATS server URL", ErrConfig)
	}
	for _, u := range splitURLs(o.URLs) {
		if _, err := url.Parse(u); err != nil {
			return fmt.Errorf("%w: NATS URL %q does not parse", ErrConfig, redactURL(u))
		}
	}
	if err := checkSubject(o.SubjectPrefix); err != nil {
		return fmt.Errorf("subject prefix: %w", err)
	}
	if o.Stream == "" || strings.ContainsAny(o.Stream, " \t\r\n.*>/\\") {
		return fmt.Errorf("%w: stream name %q: no dots, wildcards, slashes or whitespace", ErrConfig, o.Stream)
	}
	if o.DuplicateWindow < MinDuplicateWindow {
		return fmt.Errorf("%w: duplicate window %s is below %s", ErrConfig, o.DuplicateWindow, MinDuplicateWindow)
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		return fmt.Errorf("%w: stream replicas %d: JetStream keeps 1 to 5", ErrConfig, o.Replicas)
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return fmt.Errorf("%w: set both TLS cert and key files, or neither", ErrConfig)
	}
	if o.CredsFile != "" {
		return checkCredsFile(o.CredsFile)
	}
	return nil
}

// checkCredsFile fails early on a missing or malformed credentials file
// (the client would otherwise retry the connection forever).
func checkCredsFile(name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("%w: credentials file: %w", ErrConfig, err)
	}
	if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
		return fmt.Errorf("%w: credentials file %s: no user JWT", ErrConfig, name)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return fmt.Errorf("%w: credentials file %s: no NKey seed", ErrConfig, name)
	}
	kp.Wipe()
	return nil
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// redactURL hides a password in a server URL (nats://user:pass@host).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
		u.User = url.User("redacted") // a token alone: nats://token@host
	}
	return u.String()
}

func redactURLs(s string) string {
	parts := splitURLs(s)
	for i, p := range parts {
		parts[i] = redactURL(p)
	}
	return strings.Join(parts, ",")
}
