// Package conf is materializer's TOML configuration: the schema of
// docs/configuration.md with its defaults, a strict decoder (unknown keys and wrong
// types are errors naming the key) and Validate, which reports every problem
// at once, each naming the key and the bad value.
//
// Keys that hold secrets take file paths, never the secret itself; nothing in
// this package reads those files.
package conf

import "time"

// Config is one materializer TOML file.
type Config struct {
	// Include names files (glob patterns, relative to this file's
	// directory) whose [[event_types]] are added to this file's.
	Include    []string    `toml:"include"`
	Daemon     Daemon      `toml:"daemon"`
	Nakadi     Nakadi      `toml:"nakadi"`
	Storage    Storage     `toml:"storage"`
	CSV        CSV         `toml:"csv"`
	Limits     Limits      `toml:"limits"`
	Notify     Notify      `toml:"notify"`
	Checkpoint Checkpoint  `toml:"checkpoint"`
	Load       Loader      `toml:"load"`
	EventTypes []EventType `toml:"event_types"`

	// includes records, per event type taken from an included file, the
	// file and its index there (problems name them); empty without include.
	includes []origin
}

// Daemon is the [daemon] section.
type Daemon struct {
	DataDir        string   `toml:"data_dir"`
	AdminListen    string   `toml:"admin_listen"`
	AdminTokenFile string   `toml:"admin_token_file"`
	LogLevel       string   `toml:"log_level"`
	LogFormat      string   `toml:"log_format"`
	DrainTimeout   Duration `toml:"drain_timeout"`
	OnStop         string   `toml:"on_stop"`
	MemoryLimit    ByteSize `toml:"memory_limit"`
	KeyCacheBytes  ByteSize `toml:"key_cache_bytes"`
}

// What a stop (SIGTERM) does with open sessions and unsealed files.
const (
	// OnStopHandover closes every session, seals and delivers every file,
	// commits, then exits: nothing stays in the data dir.
	OnStopHandover = "handover"
	// OnStopKeep commits what is durable and exits; sessions and open files
	// stay in the data dir for the next start on the same disk.
	OnStopKeep = "keep"
)

// Nakadi is the [nakadi] section: the subscription API client.
type Nakadi struct {
	URL                  string   `toml:"url"`
	TokenFile            string   `toml:"token_file"`
	OwningApplication    string   `toml:"owning_application"`
	ConsumerGroup        string   `toml:"consumer_group"`
	ReadFrom             string   `toml:"read_from"`
	BatchLimit           int      `toml:"batch_limit"`
	BatchFlushTimeout    Duration `toml:"batch_flush_timeout"`
	MaxUncommittedEvents int      `toml:"max_uncommitted_events"`
	CommitTimeout        Duration `toml:"commit_timeout"`
	StatsInterval        Duration `toml:"stats_interval"`
}

// Storage is the [storage] section: where sealed files are delivered.
type Storage struct {
	URL                 string   `toml:"url"`
	Region              string   `toml:"region"`
	Endpoint            string   `toml:"endpoint"`
	Compression         string   `toml:"compression"`
	CompressionLevel    int      `toml:"compression_level"`
	RollMaxBytes        ByteSize `toml:"roll_max_bytes"`
	RollMaxRows         int      `toml:"roll_max_rows"`
	RollMaxAge          Duration `toml:"roll_max_age"`
	MaxStagedBytes      ByteSize `toml:"max_staged_bytes"`
	UploadConcurrency   int      `toml:"upload_concurrency"`
	SSE                 string   `toml:"sse"`
	SSEKMSKeyID         string   `toml:"sse_kms_key_id"`
	AccessKeyIDFile     string   `toml:"access_key_id_file"`
	SecretAccessKeyFile string   `toml:"secret_access_key_file"`
}

// CSV is the [csv] section: the dialect of every file written.
type CSV struct {
	Delimiter string `toml:"delimiter"`
	Header    bool   `toml:"header"`
	Null      string `toml:"null"`
}

// Limits is the [limits] section: what one event may cost (hostile input
// is bounded).
type Limits struct {
	MaxEventBytes       ByteSize `toml:"max_event_bytes"`
	MaxRowsPerEvent     int      `toml:"max_rows_per_event"`
	MaxEventOutputBytes ByteSize `toml:"max_event_output_bytes"`
	MaxFieldBytes       ByteSize `toml:"max_field_bytes"`
	MaxRejectedRawBytes ByteSize `toml:"max_rejected_raw_bytes"`
}

// Notify is the [notify] section: delivery notices over NATS JetStream.
type Notify struct {
	NATSURL         string   `toml:"nats_url"`
	SubjectPrefix   string   `toml:"subject_prefix"`
	Stream          string   `toml:"stream"`
	CredentialsFile string   `toml:"credentials_file"`
	TLSCAFile       string   `toml:"tls_ca_file"`
	TLSCertFile     string   `toml:"tls_cert_file"`
	TLSKeyFile      string   `toml:"tls_key_file"`
	DuplicateWindow Duration `toml:"duplicate_window"`
	PublishTimeout  Duration `toml:"publish_timeout"`
	StreamReplicas  int      `toml:"stream_replicas"`
}

// Checkpoint is the [checkpoint] section.
type Checkpoint struct {
	Interval   Duration `toml:"interval"`
	Keep       int      `toml:"keep"`
	URL        string   `toml:"url"`
	OnShutdown bool     `toml:"on_shutdown"`
}

// Loader is the [load] section, read only by `materializer load` (the DWH
// loader).
type Loader struct {
	DSNFile     string `toml:"dsn_file"`
	Schema      string `toml:"schema"`
	Durable     string `toml:"durable"`
	History     bool   `toml:"history"`
	AdminListen string `toml:"admin_listen"`
	BatchFiles  int    `toml:"batch_files"`
	MaxAttempts int    `toml:"max_attempts"`
}

// EventType is one [[event_types]] entry: what to consume and how to compact.
type EventType struct {
	Name           string   `toml:"name"`
	PartitionKey   []string `toml:"partition_key"`
	OrderingKey    string   `toml:"ordering_key"`
	Ordering       string   `toml:"ordering"`
	SessionGap     Duration `toml:"session_gap"`
	SessionMax     Duration `toml:"session_max"`
	KeyRetention   Duration `toml:"key_retention"`
	EIDPath        string   `toml:"eid_path"`
	OccurredAtPath string   `toml:"occurred_at_path"`
	Tables         []Table  `toml:"tables"`
}

// Table is one [[event_types.tables]] entry.
type Table struct {
	Name    string   `toml:"name"`
	Columns []Column `toml:"columns"`
}

// Column is one entry of a table's columns list.
type Column struct {
	Name     string `toml:"name"`
	Path     string `toml:"path"`
	Type     string `toml:"type"` // "" = string (event), int (ordinal), string (lineage)
	Required bool   `toml:"required"`
	Source   string `toml:"source"`
}

// Orderings of an event type's ordering key.
const (
	OrderingNumber    = "number"
	OrderingString    = "string"
	OrderingTimestamp = "timestamp"
	OrderingArrival   = "arrival"
)

// Default returns a Config holding every documented default. Keys without a
// default (data_dir, urls, event types) are empty.
func Default() Config {
	return Config{
		Daemon: Daemon{
			AdminListen:   "127.0.0.1:8080",
			LogLevel:      "info",
			LogFormat:     "json",
			DrainTimeout:  defaultDuration("90s"),
			OnStop:        OnStopHandover,
			MemoryLimit:   Bytes(512 << 20),
			KeyCacheBytes: Bytes(0),
		},
		Nakadi: Nakadi{
			ConsumerGroup:        "default",
			ReadFrom:             "end",
			BatchLimit:           500,
			BatchFlushTimeout:    defaultDuration("5s"),
			MaxUncommittedEvents: 50000,
			CommitTimeout:        defaultDuration("60s"),
			StatsInterval:        defaultDuration("30s"),
		},
		Storage: Storage{
			Compression:       "gzip",
			CompressionLevel:  1,
			RollMaxBytes:      Bytes(256 << 20),
			RollMaxAge:        defaultDuration("5m"),
			MaxStagedBytes:    Bytes(10 << 30),
			UploadConcurrency: 16,
		},
		CSV: CSV{Delimiter: ",", Header: true},
		Limits: Limits{
			MaxEventBytes:       Bytes(8 << 20),
			MaxRowsPerEvent:     10000,
			MaxEventOutputBytes: Bytes(16 << 20),
			MaxFieldBytes:       Bytes(1 << 20),
			MaxRejectedRawBytes: Bytes(60 << 10),
		},
		Notify: Notify{
			SubjectPrefix:   "materializer.files",
			Stream:          "MATERIALIZER_FILES",
			DuplicateWindow: defaultDuration("2h"),
			PublishTimeout:  defaultDuration("10s"),
			StreamReplicas:  1,
		},
		Checkpoint: Checkpoint{Interval: defaultDuration("10m"), Keep: 6},
		Load: Loader{
			Schema: "ods", Durable: "dwh-loader", AdminListen: "127.0.0.1:8081",
			BatchFiles: 16, MaxAttempts: 5,
		},
	}
}

// Defaults of event-type keys, applied by Parse when a key is absent.
const (
	DefaultKeyRetention   = 168 * time.Hour
	DefaultEIDPath        = "metadata.eid"
	DefaultOccurredAtPath = "metadata.occurred_at"
)

// applyEventTypeDefaults fills the event-type keys that the file left out.
// A column's empty type stays empty: flatten reads it as "string" for event
// columns and as the source's own type for ordinal and lineage columns.
func (c *Config) applyEventTypeDefaults() {
	for i := range c.EventTypes {
		et := &c.EventTypes[i]
		if !et.KeyRetention.IsSet() {
			et.KeyRetention = Dur(DefaultKeyRetention)
		}
		if et.EIDPath == "" {
			et.EIDPath = DefaultEIDPath
		}
		if et.OccurredAtPath == "" {
			et.OccurredAtPath = DefaultOccurredAtPath
		}
	}
}

// defaultDuration is a Duration written as in the configuration reference (docs/configuration.md).
func defaultDuration(text string) Duration {
	var d Duration
	if err := d.setTOML(text); err != nil || d.err != nil {
		panic("conf: bad default duration " + text)
	}
	return d
}
