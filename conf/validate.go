package conf

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"materializer/internal/redact"
)

// Validate checks the config for `materializer run` and returns Problems
// listing every problem (nil when there is none).
func (c *Config) Validate() error { return c.ValidateFor(ForRun) }

// ValidateFor is Validate for the command of mode.
func (c *Config) ValidateFor(mode Mode) error {
	if ps := c.validate(mode); len(ps) > 0 {
		return ps
	}
	return nil
}

func (c *Config) validate(mode Mode) Problems {
	var ps problems
	c.Daemon.validate(&ps, mode)
	c.Nakadi.validate(&ps, mode)
	c.Storage.validate(&ps)
	c.CSV.validate(&ps)
	c.Limits.validate(&ps)
	c.Notify.validate(&ps, mode)
	c.Checkpoint.validate(&ps)
	if mode == ForLoad || c.Load.DSNFile != "" {
		c.validateLoad(&ps)
	}
	c.validateEventTypes(&ps)
	return ps.list
}

var (
	logLevels  = []string{"trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled"}
	logFormats = []string{"json", "console"}
)

func (d *Daemon) validate(ps *problems, mode Mode) {
	if d.DataDir == "" && mode != ForLoad {
		ps.missing("daemon.data_dir")
	}
	if _, port, err := net.SplitHostPort(d.AdminListen); err != nil || !validPort(port) {
		ps.bad("daemon.admin_listen", d.AdminListen, `is not a host:port address (like "127.0.0.1:8080")`)
	}
	oneOf(ps, "daemon.log_level", d.LogLevel, logLevels)
	oneOf(ps, "daemon.log_format", d.LogFormat, logFormats)
	positive(ps, "daemon.drain_timeout", d.DrainTimeout)
	oneOf(ps, "daemon.on_stop", d.OnStop, []string{OnStopHandover, OnStopKeep})
	if positiveBytes(ps, "daemon.memory_limit", d.MemoryLimit) && d.MemoryLimit.n < MinMemoryLimit {
		ps.bad("daemon.memory_limit", d.MemoryLimit.text, "must be at least %s", formatBytes(MinMemoryLimit))
	}
	switch k := d.KeyCacheBytes; {
	case !k.IsSet() || k.err != nil:
		positiveBytes(ps, "daemon.key_cache_bytes", k)
	case k.n == 0: // derived from memory_limit
	case k.n < 4<<10:
		ps.bad("daemon.key_cache_bytes", k.text, "must be 0 (derived from daemon.memory_limit) or at least 4KiB")
	case d.MemoryLimit.err == nil && k.n > d.MemoryLimit.n/2:
		ps.bad("daemon.key_cache_bytes", k.text, "must be at most half of daemon.memory_limit (%s)", d.MemoryLimit.text)
	}
}

// MinMemoryLimit is the smallest daemon.memory_limit: the fixed costs of
// the process (Go runtime, Pebble's smallest memtables, buffers) need it.
const MinMemoryLimit = 128 << 20

func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n <= 65535
}

func (n *Nakadi) validate(ps *problems, mode Mode) {
	switch {
	case n.URL == "" && (mode == ForDemo || mode == ForLoad):
	case n.URL == "":
		ps.missing("nakadi.url")
	default:
		httpURL(ps, "nakadi.url", n.URL, "use token_file for credentials")
	}
	if n.OwningApplication == "" {
		ps.missing("nakadi.owning_application")
	}
	if n.ConsumerGroup == "" {
		ps.missing("nakadi.consumer_group")
	}
	oneOf(ps, "nakadi.read_from", n.ReadFrom, []string{"begin", "end"})
	if n.BatchLimit < 1 {
		ps.add("nakadi.batch_limit", strconv.Itoa(n.BatchLimit), "must be >= 1")
	}
	positive(ps, "nakadi.batch_flush_timeout", n.BatchFlushTimeout)
	if n.MaxUncommittedEvents < n.BatchLimit {
		ps.add("nakadi.max_uncommitted_events", strconv.Itoa(n.MaxUncommittedEvents),
			"must be >= nakadi.batch_limit (%d)", n.BatchLimit)
	}
	between(ps, "nakadi.commit_timeout", n.CommitTimeout, time.Second, 60*time.Second)
	positive(ps, "nakadi.stats_interval", n.StatsInterval)
}

// httpURL checks an http(s) URL with a host and no credentials.
func httpURL(ps *problems, key, s, credentialsHint string) {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		ps.bad(key, redactURL(s), "is not an http:// or https:// URL with a host")
	case u.User != nil:
		ps.bad(key, redactURL(s), "must not hold credentials: %s", credentialsHint)
	}
}

// redactURL hides the userinfo of s (a URL or a comma-separated list of
// them) so that problems never print credentials: a password and a bare
// token alike (https://TOKEN@host).
func redactURL(s string) string { return redact.URL(s) }

func (s *Storage) validate(ps *problems) {
	if s.URL == "" {
		ps.missing("storage.url")
	} else {
		storageURL(ps, "storage.url", s.URL)
	}
	if s.Endpoint != "" {
		httpURL(ps, "storage.endpoint", s.Endpoint, "use access_key_id_file and secret_access_key_file")
	}
	oneOf(ps, "storage.compression", s.Compression, []string{"none", "gzip"})
	intBetween(ps, "storage.compression_level", s.CompressionLevel, 1, 9)
	positiveBytes(ps, "storage.roll_max_bytes", s.RollMaxBytes)
	if s.RollMaxRows < 0 {
		ps.add("storage.roll_max_rows", strconv.Itoa(s.RollMaxRows), "must be >= 0 (0 = no row limit)")
	}
	positive(ps, "storage.roll_max_age", s.RollMaxAge)
	if positiveBytes(ps, "storage.max_staged_bytes", s.MaxStagedBytes) &&
		s.RollMaxBytes.err == nil && s.MaxStagedBytes.n <= s.RollMaxBytes.n {
		ps.bad("storage.max_staged_bytes", s.MaxStagedBytes.text, "must be > storage.roll_max_bytes (%s)", s.RollMaxBytes.text)
	}
	intBetween(ps, "storage.upload_concurrency", s.UploadConcurrency, 1, 64)
	s.validateEncryption(ps)
	if (s.AccessKeyIDFile == "") != (s.SecretAccessKeyFile == "") {
		ps.add("storage.access_key_id_file", "", "and storage.secret_access_key_file must be set together (or both left empty for the AWS default credential chain)")
	}
}

func (s *Storage) validateEncryption(ps *problems) {
	oneOf(ps, "storage.sse", s.SSE, []string{"", "AES256", "aws:kms"})
	switch {
	case s.SSE == "aws:kms" && s.SSEKMSKeyID == "":
		ps.add("storage.sse_kms_key_id", "", `is required when storage.sse = "aws:kms"`)
	case s.SSE != "aws:kms" && s.SSEKMSKeyID != "":
		ps.bad("storage.sse_kms_key_id", s.SSEKMSKeyID, `is only allowed with storage.sse = "aws:kms"`)
	}
}

// bucketName is S3's rule for bucket names (lowercase, digits, dots, dashes).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// storageURL checks s3://bucket[/prefix] or file:///absolute/path.
func storageURL(ps *problems, key, s string) {
	u, err := url.Parse(s)
	if err != nil {
		ps.bad(key, redactURL(s), "is not a URL (s3://bucket/prefix or file:///path)")
		return
	}
	switch u.Scheme {
	case "s3":
		switch {
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			ps.bad(key, redactURL(s), "must be s3://bucket[/prefix] without credentials, query or fragment")
		case !bucketName.MatchString(u.Host):
			ps.bad(key, redactURL(s), "does not name a valid S3 bucket (3-63 lowercase letters, digits, '.' and '-')")
		case strings.Contains(u.Path, "//"):
			ps.bad(key, redactURL(s), "has an empty path segment in its prefix")
		}
	case "file":
		if u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || u.RawQuery != "" || u.Fragment != "" {
			ps.bad(key, redactURL(s), "must be file:///absolute/path (three slashes, no host)")
		}
	default:
		ps.bad(key, redactURL(s), "must be an s3:// or file:// URL")
	}
}

func (c *CSV) validate(ps *problems) {
	d := c.Delimiter
	switch {
	case len(d) != 1:
		ps.bad("csv.delimiter", d, "must be exactly one byte")
	case d == `"` || d == "\r" || d == "\n" || d[0] >= 0x80:
		ps.bad("csv.delimiter", d, `cannot be a delimiter: use an ASCII character other than '"', CR and LF`)
	}
	if strings.ContainsAny(c.Null, "\"\r\n") || (len(d) == 1 && strings.Contains(c.Null, d)) {
		ps.bad("csv.null", c.Null, `must not contain the delimiter, '"', CR or LF`)
	}
}

func (n *Notify) validate(ps *problems, mode Mode) {
	switch {
	case n.NATSURL != "":
		natsURLs(ps, "notify.nats_url", n.NATSURL)
	case mode == ForLoad:
		ps.add("notify.nats_url", "", "is required by `materializer load`: it reads the notices")
	}
	intBetween(ps, "notify.stream_replicas", n.StreamReplicas, 1, 5)
	if !validSubject(n.SubjectPrefix) {
		ps.bad("notify.subject_prefix", n.SubjectPrefix, "is not a NATS subject (dot-separated tokens, no spaces, no * or > wildcards)")
	}
	if !validStreamName(n.Stream) {
		ps.bad("notify.stream", n.Stream, "is not a JetStream stream name (1-255 characters, no spaces, '.', '*', '>', '/' or '\\')")
	}
	if (n.TLSCertFile == "") != (n.TLSKeyFile == "") {
		ps.add("notify.tls_cert_file", "", "and notify.tls_key_file must be set together")
	}
	atLeast(ps, "notify.duplicate_window", n.DuplicateWindow, time.Hour)
	positive(ps, "notify.publish_timeout", n.PublishTimeout)
}

// natsURLs checks a comma-separated list of nats:// or tls:// URLs.
func natsURLs(ps *problems, key, s string) {
	for _, one := range strings.Split(s, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		switch {
		case err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "":
			ps.bad(key, redactURL(s), "must be a comma-separated list of nats:// or tls:// URLs; %q is not one", redactURL(one))
			return
		case u.User != nil:
			ps.bad(key, redactURL(s), "must not hold credentials: use notify.credentials_file")
			return
		}
	}
}

func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}

func validStreamName(s string) bool {
	return s != "" && len(s) <= 255 && !strings.ContainsAny(s, " \t\r\n.*>/\\")
}

func (l *Limits) validate(ps *problems) {
	atLeastBytes(ps, "limits.max_event_bytes", l.MaxEventBytes, 1<<10)
	if l.MaxRowsPerEvent < 1 {
		ps.add("limits.max_rows_per_event", strconv.Itoa(l.MaxRowsPerEvent), "must be >= 1")
	}
	atLeastBytes(ps, "limits.max_event_output_bytes", l.MaxEventOutputBytes, 1<<10)
	atLeastBytes(ps, "limits.max_field_bytes", l.MaxFieldBytes, 64)
	atLeastBytes(ps, "limits.max_rejected_raw_bytes", l.MaxRejectedRawBytes, 256)
}

// atLeastBytes checks a set, parseable size of at least lo.
func atLeastBytes(ps *problems, key string, b ByteSize, lo int64) {
	if positiveBytes(ps, key, b) && b.n < lo {
		ps.bad(key, b.text, "must be at least %s", formatBytes(lo))
	}
}

func (l *Loader) validate(ps *problems) {
	if l.DSNFile == "" {
		ps.add("load.dsn_file", "", "is required by `materializer load`: a file holding the PostgreSQL connection string")
	}
	if !sqlIdent.MatchString(l.Schema) {
		ps.bad("load.schema", l.Schema, "is not a schema name ([a-z_][a-z0-9_]*, at most 63 characters)")
	}
	if !validStreamName(l.Durable) {
		ps.bad("load.durable", l.Durable, "is not a JetStream consumer name (1-255 characters, no spaces, '.', '*', '>', '/' or '\\')")
	}
	if _, port, err := net.SplitHostPort(l.AdminListen); err != nil || !validPort(port) {
		ps.bad("load.admin_listen", l.AdminListen, `is not a host:port address (like "127.0.0.1:8081")`)
	}
	intBetween(ps, "load.batch_files", l.BatchFiles, 1, 1000)
	intBetween(ps, "load.max_attempts", l.MaxAttempts, 1, 1000)
}

// sqlIdent is a PostgreSQL identifier that needs no quoting.
var sqlIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (c *Checkpoint) validate(ps *problems) {
	if c.Interval.err == nil && c.Interval.d < 0 {
		ps.bad("checkpoint.interval", c.Interval.text, `must be >= 0 ("0s" turns periodic checkpoints off)`)
	}
	durationParses(ps, "checkpoint.interval", c.Interval)
	if c.Keep < 1 {
		ps.add("checkpoint.keep", strconv.Itoa(c.Keep), "must be >= 1")
	}
	if c.URL != "" {
		storageURL(ps, "checkpoint.url", c.URL)
	}
}

// oneOf checks that v is one of allowed.
func oneOf(ps *problems, key, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	shown := make([]string, len(allowed))
	for i, a := range allowed {
		shown[i] = quote(a)
	}
	ps.bad(key, v, "must be one of %s", strings.Join(shown, ", "))
}

func intBetween(ps *problems, key string, v, lo, hi int) {
	if v < lo || v > hi {
		ps.add(key, strconv.Itoa(v), "must be between %d and %d", lo, hi)
	}
}

// durationParses reports an unparseable duration; it returns false then.
func durationParses(ps *problems, key string, d Duration) bool {
	if d.err != nil {
		ps.bad(key, d.text, "%s", d.err)
		return false
	}
	return true
}

// positive checks a set, parseable duration > 0.
func positive(ps *problems, key string, d Duration) bool {
	switch {
	case !d.IsSet():
		ps.missing(key)
	case !durationParses(ps, key, d):
	case d.d <= 0:
		ps.bad(key, d.text, "must be > 0")
	default:
		return true
	}
	return false
}

func atLeast(ps *problems, key string, d Duration, lo time.Duration) {
	if positive(ps, key, d) && d.d < lo {
		ps.bad(key, d.text, "must be >= %s", formatDuration(lo))
	}
}

func between(ps *problems, key string, d Duration, lo, hi time.Duration) {
	if positive(ps, key, d) && (d.d < lo || d.d > hi) {
		ps.bad(key, d.text, "must be between %s and %s", formatDuration(lo), formatDuration(hi))
	}
}

// positiveBytes checks a set, parseable size > 0.
func positiveBytes(ps *problems, key string, b ByteSize) bool {
	switch {
	case !b.IsSet():
		ps.missing(key)
	case b.err != nil:
		ps.bad(key, b.text, "%s", b.err)
	case b.n <= 0:
		ps.bad(key, b.text, "must be > 0")
	default:
		return true
	}
	return false
}
