package conf

import (
	"fmt"
	"reflect"
	"strings"
)

// KeyDoc documents one config key for the reference table of docs/configuration.md.
type KeyDoc struct {
	Key     string // dotted, arrays of tables without index: "event_types.tables.name"
	Default string // TOML syntax, or "required", or a rule like "required unless ..."
	Doc     string
}

// Reference documents every key of the schema, in file order. A test checks
// it against the Config structs and Default, and docs/configuration.md against it.
var Reference = []KeyDoc{
	{"include", "[]", "Glob patterns (relative to this file's directory) of more files holding `[[event_types]]` only, e.g. `[\"/etc/materializer/event-types.d/*.toml\"]`; their event types are added to this file's. A problem names the file and the key in it. A SIGHUP reload reads the patterns again (added files start their event types)."},
	{"daemon.data_dir", "required", "Directory for Pebble state, staging files and local checkpoints (EBS). Created with mode 0750; locked with `LOCK` (flock) so only one daemon uses it."},
	{"daemon.admin_listen", `"127.0.0.1:8080"`, "host:port of the admin HTTP API (`/healthz`, `/readyz`, `/metrics`, `/v1/...`)."},
	{"daemon.admin_token_file", `""`, "File holding the bearer token the admin API requires for every `/v1` endpoint (reads included) and `/debug/pprof`; `/healthz`, `/readyz` and `/metrics` stay open. Empty: no token, and the `POST` endpoints accept loopback clients only. Re-read on SIGHUP."},
	{"daemon.log_level", `"info"`, "trace, debug, info, warn, error, fatal, panic or disabled. Applied again on SIGHUP."},
	{"daemon.log_format", `"json"`, "`json` (one object per line, for journald) or `console` (for humans)."},
	{"daemon.drain_timeout", `"90s"`, "Budget for a stop on SIGTERM/SIGINT: the handover (closing every session, delivering every file, committing) and the last commits; what does not finish in time stays in the data dir (exit 1). The unit's `TimeoutStopSec` (120s) must be larger. How long a handover takes: docs/performance.md."},
	{"daemon.on_stop", `"handover"`, "What SIGTERM does: `handover` stops reading, closes every open session, seals and delivers every file, commits and exits 0 (nothing stays in the data dir; if storage or NATS is down it keeps everything, logs what stays and exits 1); `keep` commits what is durable and leaves open sessions and files for the next start on the same disk."},
	{"daemon.memory_limit", `"512MiB"`, "The process's memory budget (at least 128MiB): Pebble's block cache and memtables, the key cache, consumer and staging buffers and Go's soft heap limit (GOMEMLIMIT) are derived from it; `check` prints the split. Takes effect on restart."},
	{"daemon.key_cache_bytes", `"0B"`, "Override of the key cache's share of `memory_limit` (the committed states of recently used keys, about 100 bytes a key; docs/performance.md); `0B`: derived from `memory_limit`. Otherwise at least 4KiB and at most half of `memory_limit`. Takes effect on restart."},

	{"nakadi.url", "required (not for `demo`)", "Base URL of Nakadi (`http(s)://`, no credentials in it)."},
	{"nakadi.token_file", `""`, "File holding the OAuth bearer token; re-read when it changes. Empty: no `Authorization` header."},
	{"nakadi.owning_application", "required", "`owning_application` of the subscriptions the daemon creates."},
	{"nakadi.consumer_group", `"default"`, "`consumer_group` of the subscriptions (one per event type)."},
	{"nakadi.read_from", `"end"`, "Where a new subscription starts: `begin` or `end`."},
	{"nakadi.batch_limit", "500", "Maximum events per batch (>= 1)."},
	{"nakadi.batch_flush_timeout", `"5s"`, "Longest wait for a partial batch (> 0)."},
	{"nakadi.max_uncommitted_events", "50000", "Events Nakadi sends before it waits for a commit (>= `batch_limit`)."},
	{"nakadi.commit_timeout", `"60s"`, "Nakadi's commit timeout, 1s..60s; cursors are committed well within it."},
	{"nakadi.stats_interval", `"30s"`, "How often partition ownership and lag are read (`/stats`)."},

	{"storage.url", "required", "Where files are delivered: `s3://bucket[/prefix]` or `file:///absolute/path`."},
	{"storage.region", `""`, "AWS region; empty: the AWS default chain (`AWS_REGION`, profile, instance metadata)."},
	{"storage.endpoint", `""`, "S3-compatible endpoint (`http(s)://`, path-style requests); empty: AWS."},
	{"storage.compression", `"gzip"`, "`none` or `gzip` (files end in `.csv.gz`)."},
	{"storage.compression_level", "1", "gzip level, 1 (fastest) .. 9 (smallest)."},
	{"storage.roll_max_bytes", `"256MiB"`, "Seal a file when it reaches this size on disk, i.e. after compression (> 0)."},
	{"storage.roll_max_rows", "0", "Seal a file when it holds this many rows; 0: no row limit."},
	{"storage.roll_max_age", `"5m"`, "Seal a file this long after it was opened (> 0)."},
	{"storage.max_staged_bytes", `"10GiB"`, "Stop reading from Nakadi while more than this is staged and undelivered (> `roll_max_bytes`)."},
	{"storage.upload_concurrency", "16", "Parallel uploads, 1..64 (each holds a staging file open and a connection)."},
	{"storage.sse", `""`, "S3 server-side encryption: empty, `AES256` or `aws:kms`."},
	{"storage.sse_kms_key_id", `""`, "KMS key id or ARN; required when `sse = \"aws:kms\"`, not allowed otherwise."},
	{"storage.access_key_id_file", `""`, "File holding the access key id; set together with `secret_access_key_file`. Both empty: the AWS default credential chain."},
	{"storage.secret_access_key_file", `""`, "File holding the secret access key."},

	{"csv.delimiter", `","`, "Field delimiter: exactly one ASCII byte, not `\"`, CR or LF."},
	{"csv.header", "true", "Start every file with the header line."},
	{"csv.null", `""`, "Text of a missing value, e.g. `\"\\\\N\"`; must not contain the delimiter, `\"`, CR or LF."},

	{"limits.max_event_bytes", `"8MiB"`, "An event larger than this is rejected unparsed; the reason names the limit. Applies to `materializer flatten` too."},
	{"limits.max_rows_per_event", "10000", "An event whose tables together would get more rows than this is rejected; checked while the rows are built, before their memory is taken."},
	{"limits.max_event_output_bytes", `"16MiB"`, "An event whose rows in all tables would take more CSV bytes than this is rejected; checked while the rows are built."},
	{"limits.max_field_bytes", `"1MiB"`, "An event with a field (a column's CSV text, e.g. an expanded decimal) longer than this is rejected, as is one whose partition key or ordering value is longer."},
	{"limits.max_rejected_raw_bytes", `"60KiB"`, "A rejected file's `raw_event` holds at most this many bytes (60KiB fits Redshift's `VARCHAR(65535)`); of a longer event it holds the prefix, and the error column says how many bytes of how many and gives the whole event's sha256."},

	{"notify.nats_url", `""`, "Comma-separated `nats://` or `tls://` URLs of the NATS cluster; empty: no notices. No credentials in it."},
	{"notify.subject_prefix", `"materializer.files"`, "Notices go to `{subject_prefix}.{event_type}`; a NATS subject without wildcards."},
	{"notify.stream", `"MATERIALIZER_FILES"`, "JetStream stream holding the notices; created if missing."},
	{"notify.credentials_file", `""`, "NATS `.creds` file (user JWT and NKey seed)."},
	{"notify.tls_ca_file", `""`, "CA bundle for `tls://` servers; empty: the system roots."},
	{"notify.tls_cert_file", `""`, "Client certificate for mutual TLS; set together with `tls_key_file`."},
	{"notify.tls_key_file", `""`, "Client private key for mutual TLS."},
	{"notify.duplicate_window", `"2h"`, "JetStream de-duplication window of the stream (>= 1h); repeated notices inside it are dropped by id."},
	{"notify.publish_timeout", `"10s"`, "Longest wait for JetStream to acknowledge a notice."},
	{"notify.stream_replicas", "1", "Replicas of the stream the daemon creates (1..5; 3 on a NATS cluster). An existing stream with fewer replicas is reported at start."},

	{"checkpoint.interval", `"10m"`, "Time between checkpoints; `\"0s\"`: no periodic checkpoints."},
	{"checkpoint.keep", "6", "Checkpoints kept (>= 1), locally and in the remote copy."},
	{"checkpoint.url", `""`, "Remote copy of each checkpoint for disaster recovery: `s3://` (with the `[storage]` region, endpoint, credentials and encryption) or `file://`; empty: local only. One URL per daemon."},
	{"checkpoint.on_shutdown", "false", "Take a checkpoint during a clean stop."},

	{"load.dsn_file", `""`, "`materializer load` only (required there): file holding the PostgreSQL connection string (it holds a password); re-read on SIGHUP. When set, `check` also checks what the loader needs: a column for every partition key path and for the ordering key in every table (docs/loader.md)."},
	{"load.schema", `"ods"`, "Schema of the loader's tables."},
	{"load.durable", `"dwh-loader"`, "JetStream durable consumer of the loader (one per warehouse)."},
	{"load.history", "false", "Also append every loaded main and correction row to `{table}_history`."},
	{"load.admin_listen", `"127.0.0.1:8081"`, "host:port of the loader's admin HTTP API."},
	{"load.batch_files", "16", "Most files applied in one PostgreSQL transaction (1..1000)."},
	{"load.max_attempts", "5", "Attempts of a file that cannot be loaded before its notice is parked in `materializer_failed_files` (1..1000)."},

	{"event_types", "required", "One or more `[[event_types]]`, each consumed through its own Nakadi subscription."},
	{"event_types.name", "required", "Nakadi event type (pattern `[a-zA-Z][-0-9a-zA-Z_]*(\\.[0-9a-zA-Z][-0-9a-zA-Z_]*)*`); unique."},
	{"event_types.partition_key", "required", "One or more paths that identify a resource (no `[*]`)."},
	{"event_types.ordering_key", "required unless `arrival`", "Path of the version compared by `ordering` (no `[*]`); must be empty for `arrival`."},
	{"event_types.ordering", "required", "`number`, `string`, `timestamp` or `arrival` (Nakadi offset order)."},
	{"event_types.session_gap", "required", "Close a key's session when no event arrived for this long (> 0)."},
	{"event_types.session_max", "required", "Close a key's session when it has been open this long (>= `session_gap`)."},
	{"event_types.key_retention", `"168h"`, "Remember a key's highest ordering value this long (>= `session_max`)."},
	{"event_types.eid_path", `"metadata.eid"`, "Path of the event id that tells a duplicate from a correction."},
	{"event_types.occurred_at_path", `"metadata.occurred_at"`, "Path of the event time reported in notices (`min/max_occurred_at`)."},
	{"event_types.tables", "required", "One or more tables (`[[event_types.tables]]`), names unique within the event type."},
	{"event_types.tables.name", "required", "Table name `[a-zA-Z_][a-zA-Z0-9_]*`; `_rejected` is reserved."},
	{"event_types.tables.columns", "required", "One or more columns, in CSV order."},
	{"event_types.tables.columns.name", "required", "Column name; unique in the table (case-insensitively)."},
	{"event_types.tables.columns.path", `""`, "JSON path (docs/mapping.md): `a.b`, `a[0]`, `a[*]` explodes, `[\"k.x\"]` quotes; required for event columns."},
	{"event_types.tables.columns.type", `"string"`, "`string`, `int`, `decimal`, `bool`, `timestamp` or `json` (ordinal columns are `int`)."},
	{"event_types.tables.columns.required", "false", "A missing value rejects the event."},
	{"event_types.tables.columns.source", `""`, "Empty: the event at `path`; `ordinal` (index of the `[*]` element named by `path`), `partition`, `offset` or `event_type`."},
}

// ReferenceMarkdown renders Reference as the Markdown table of docs/configuration.md.
func ReferenceMarkdown() string {
	var b strings.Builder
	b.WriteString("| key | default | meaning |\n|---|---|---|\n")
	for _, k := range Reference {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.Key, mdDefault(k.Default), strings.ReplaceAll(k.Doc, "|", "\\|"))
	}
	return b.String()
}

func mdDefault(d string) string {
	if strings.HasPrefix(d, `"`) || d == "true" || d == "false" || isDecimalNumber(d) {
		return "`" + d + "`"
	}
	return d
}

// SchemaKeys lists every key of the Config structs in the Reference form,
// in struct order.
func SchemaKeys() []string {
	var keys []string
	schemaKeys(&keys, "", reflect.TypeOf(Config{}))
	return keys
}

func schemaKeys(keys *[]string, prefix string, t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("toml") == "" {
			continue // not a key of the file
		}
		key := join(prefix, f.Tag.Get("toml"))
		ft := f.Type
		if prefix != "" || ft.Kind() != reflect.Struct {
			*keys = append(*keys, key)
		}
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !isLeaf(ft) {
			schemaKeys(keys, key, ft)
		}
	}
}

func isLeaf(t reflect.Type) bool {
	return t == reflect.TypeOf(Duration{}) || t == reflect.TypeOf(ByteSize{})
}
