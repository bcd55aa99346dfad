package conf

import (
	"strings"
	"testing"
)

// ruleCase edits one or more keys of testdata/base.toml and expects exactly
// one problem, at key, whose text contains want.
type ruleCase struct {
	name  string
	edits map[string]string
	key   string
	want  string
}

func e(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

var daemonRules = []ruleCase{
	{"data_dir missing", e("daemon.data_dir", deleteKey), "daemon.data_dir", "is required"},
	{"data_dir empty", e("daemon.data_dir", `""`), "daemon.data_dir", "is required"},
	{"admin_listen no port", e("daemon.admin_listen", `"localhost"`), "daemon.admin_listen", `"localhost" is not a host:port`},
	{"admin_listen bad port", e("daemon.admin_listen", `"127.0.0.1:99999"`), "daemon.admin_listen", `"127.0.0.1:99999"`},
	{"log_level unknown", e("daemon.log_level", `"verbose"`), "daemon.log_level", `"verbose" must be one of "trace"`},
	{"log_format unknown", e("daemon.log_format", `"text"`), "daemon.log_format", `"text" must be one of "json", "console"`},
	{"drain_timeout zero", e("daemon.drain_timeout", `"0s"`), "daemon.drain_timeout", `"0s" must be > 0`},
	{"drain_timeout negative", e("daemon.drain_timeout", `"-1s"`), "daemon.drain_timeout", `"-1s" must be > 0`},
	{"drain_timeout unparseable", e("daemon.drain_timeout", `"soon"`), "daemon.drain_timeout", `"soon" is not a duration`},
	{"key_cache_bytes too small", e("daemon.key_cache_bytes", `"1KiB"`), "daemon.key_cache_bytes", `"1KiB" must be 0 (derived from daemon.memory_limit) or at least 4KiB`},
}

var nakadiRules = []ruleCase{
	{"url missing", e("nakadi.url", deleteKey), "nakadi.url", "is required"},
	{"url scheme", e("nakadi.url", `"ftp://nakadi"`), "nakadi.url", `"ftp://nakadi" is not an http:// or https:// URL`},
	{"url without host", e("nakadi.url", `"https://"`), "nakadi.url", "with a host"},
	{"url with credentials", e("nakadi.url", `"https://user:hunter2@nakadi"`), "nakadi.url", "must not hold credentials: use token_file"},
	{"owning_application missing", e("nakadi.owning_application", deleteKey), "nakadi.owning_application", "is required"},
	{"consumer_group empty", e("nakadi.consumer_group", `""`), "nakadi.consumer_group", "is required"},
	{"read_from unknown", e("nakadi.read_from", `"middle"`), "nakadi.read_from", `"middle" must be one of "begin", "end"`},
	{"batch_limit zero", e("nakadi.batch_limit", "0"), "nakadi.batch_limit", "0 must be >= 1"},
	{"batch_flush_timeout zero", e("nakadi.batch_flush_timeout", `"0s"`), "nakadi.batch_flush_timeout", `"0s" must be > 0`},
	{"max_uncommitted below batch_limit", e("nakadi.max_uncommitted_events", "100"), "nakadi.max_uncommitted_events", "100 must be >= nakadi.batch_limit (500)"},
	{"commit_timeout above 60s", e("nakadi.commit_timeout", `"61s"`), "nakadi.commit_timeout", `"61s" must be between 1s and 1m`},
	{"commit_timeout below 1s", e("nakadi.commit_timeout", `"500ms"`), "nakadi.commit_timeout", `"500ms" must be between`},
	{"stats_interval zero", e("nakadi.stats_interval", `"0s"`), "nakadi.stats_interval", `"0s" must be > 0`},
}

var storageRules = []ruleCase{
	{"url missing", e("storage.url", deleteKey), "storage.url", "is required"},
	{"url scheme", e("storage.url", `"gs://bucket"`), "storage.url", `"gs://bucket" must be an s3:// or file:// URL`},
	{"url bad bucket", e("storage.url", `"s3://My_Bucket/x"`), "storage.url", "does not name a valid S3 bucket"},
	{"url empty prefix segment", e("storage.url", `"s3://bucket//x"`), "storage.url", "empty path segment"},
	{"url s3 credentials", e("storage.url", `"s3://key:hunter2@bucket"`), "storage.url", "without credentials"},
	{"url file relative", e("storage.url", `"file://relative/dir"`), "storage.url", "must be file:///absolute/path"},
	{"url file query", e("storage.url", `"file:///srv/x?y=1"`), "storage.url", "must be file:///absolute/path"},
	{"endpoint not http", e("storage.endpoint", `"minio:9000"`), "storage.endpoint", `"minio:9000" is not an http:// or https:// URL`},
	{"compression unknown", e("storage.compression", `"zstd"`), "storage.compression", `"zstd" must be one of "none", "gzip"`},
	{"compression_level 0", e("storage.compression_level", "0"), "storage.compression_level", "0 must be between 1 and 9"},
	{"compression_level 10", e("storage.compression_level", "10"), "storage.compression_level", "10 must be between 1 and 9"},
	{"roll_max_bytes zero", e("storage.roll_max_bytes", `"0B"`), "storage.roll_max_bytes", `"0B" must be > 0`},
	{"roll_max_bytes unparseable", e("storage.roll_max_bytes", `"lots"`), "storage.roll_max_bytes", `"lots" is not a size`},
	{"roll_max_bytes negative int", e("storage.roll_max_bytes", "-1"), "storage.roll_max_bytes", "is negative"},
	{"roll_max_bytes unknown unit", e("storage.roll_max_bytes", `"5XB"`), "storage.roll_max_bytes", `"5XB" is not a size`},
	{"roll_max_rows negative", e("storage.roll_max_rows", "-1"), "storage.roll_max_rows", "-1 must be >= 0"},
	{"roll_max_age zero", e("storage.roll_max_age", `"0s"`), "storage.roll_max_age", `"0s" must be > 0`},
	{"max_staged_bytes not above roll", e("storage.max_staged_bytes", `"256MiB"`), "storage.max_staged_bytes", `"256MiB" must be > storage.roll_max_bytes (256MiB)`},
	{"upload_concurrency 0", e("storage.upload_concurrency", "0"), "storage.upload_concurrency", "0 must be between 1 and 64"},
	{"upload_concurrency 65", e("storage.upload_concurrency", "65"), "storage.upload_concurrency", "65 must be between 1 and 64"},
	{"sse unknown", e("storage.sse", `"DES"`), "storage.sse", `"DES" must be one of "", "AES256", "aws:kms"`},
	{"sse kms without key", e("storage.sse", `"aws:kms"`), "storage.sse_kms_key_id", `is required when storage.sse = "aws:kms"`},
	{"kms key without kms", e("storage.sse", `"AES256"`, "storage.sse_kms_key_id", `"k1"`), "storage.sse_kms_key_id", `"k1" is only allowed with`},
	{"access key without secret", e("storage.access_key_id_file", `"/etc/m/id"`), "storage.access_key_id_file", "must be set together"},
	{"secret without access key", e("storage.secret_access_key_file", `"/etc/m/secret"`), "storage.access_key_id_file", "must be set together"},
}

var csvRules = []ruleCase{
	{"delimiter two bytes", e("csv.delimiter", `";;"`), "csv.delimiter", `";;" must be exactly one byte`},
	{"delimiter empty", e("csv.delimiter", `""`), "csv.delimiter", `"" must be exactly one byte`},
	{"delimiter quote", e("csv.delimiter", `"\""`), "csv.delimiter", "cannot be a delimiter"},
	{"delimiter LF", e("csv.delimiter", `"\n"`), "csv.delimiter", "cannot be a delimiter"},
	{"delimiter CR", e("csv.delimiter", `"\r"`), "csv.delimiter", "cannot be a delimiter"},
	{"delimiter non-ASCII", e("csv.delimiter", `"§"`), "csv.delimiter", "must be exactly one byte"},
	{"null with quote", e("csv.null", `"a\"b"`), "csv.null", "must not contain the delimiter"},
	{"null with delimiter", e("csv.null", `"x,y"`), "csv.null", `"x,y" must not contain the delimiter`},
}

var notifyRules = []ruleCase{
	{"nats_url scheme", e("notify.nats_url", `"http://nats:4222"`), "notify.nats_url", "nats:// or tls://"},
	{"nats_url second bad", e("notify.nats_url", `"nats://a:4222, foo"`), "notify.nats_url", `"foo" is not one`},
	{"nats_url credentials", e("notify.nats_url", `"nats://u:hunter2@nats:4222"`), "notify.nats_url", "use notify.credentials_file"},
	{"subject_prefix wildcard", e("notify.subject_prefix", `"files.*"`), "notify.subject_prefix", `"files.*" is not a NATS subject`},
	{"subject_prefix empty token", e("notify.subject_prefix", `"a..b"`), "notify.subject_prefix", "is not a NATS subject"},
	{"subject_prefix empty", e("notify.subject_prefix", `""`), "notify.subject_prefix", "is not a NATS subject"},
	{"stream with dot", e("notify.stream", `"FILES.X"`), "notify.stream", `"FILES.X" is not a JetStream stream name`},
	{"stream empty", e("notify.stream", `""`), "notify.stream", "is not a JetStream stream name"},
	{"cert without key", e("notify.tls_cert_file", `"/etc/m/c.pem"`), "notify.tls_cert_file", "must be set together"},
	{"key without cert", e("notify.tls_key_file", `"/etc/m/k.pem"`), "notify.tls_cert_file", "must be set together"},
	{"duplicate_window below 1h", e("notify.duplicate_window", `"30m"`), "notify.duplicate_window", `"30m" must be >= 1h`},
	{"publish_timeout zero", e("notify.publish_timeout", `"0s"`), "notify.publish_timeout", `"0s" must be > 0`},
}

var checkpointRules = []ruleCase{
	{"interval negative", e("checkpoint.interval", `"-1m"`), "checkpoint.interval", `"-1m" must be >= 0`},
	{"interval unparseable", e("checkpoint.interval", `"10"`), "checkpoint.interval", `"10" is not a duration`},
	{"keep zero", e("checkpoint.keep", "0"), "checkpoint.keep", "0 must be >= 1"},
	{"url scheme", e("checkpoint.url", `"ftp://host/x"`), "checkpoint.url", "must be an s3:// or file:// URL"},
}

var eventTypeRules = []ruleCase{
	{"no event types", e("event_types", deleteKey), "event_types", "is required"},
	{"name missing", e("event_types[0].name", deleteKey), "event_types[0].name", "is required"},
	{"name pattern", e("event_types[0].name", `"1article"`), "event_types[0].name", `"1article" is not a Nakadi event type name`},
	{"name empty segment", e("event_types[1].name", `"order..created"`), "event_types[1].name", "is not a Nakadi event type name"},
	{"name duplicate", e("event_types[1].name", `"article.updated"`), "event_types[1].name", `"article.updated" is the name of event_types[0] already`},
	{"partition_key empty", e("event_types[0].partition_key", "[]"), "event_types[0].partition_key", "is required"},
	{"partition_key explode", e("event_types[0].partition_key", `["article_id", "sizes[*].size"]`), "event_types[0].partition_key[1]", `"sizes[*].size" must address one value`},
	{"partition_key invalid", e("event_types[0].partition_key", `["a["]`), "event_types[0].partition_key[0]", `"a[" is not a valid path`},
	{"ordering unknown", e("event_types[0].ordering", `"version"`), "event_types[0].ordering", `"version" must be one of "number", "string", "timestamp", "arrival"`},
	{"ordering missing", e("event_types[0].ordering", deleteKey), "event_types[0].ordering", "is required"},
	{"ordering_key missing", e("event_types[0].ordering_key", deleteKey), "event_types[0].ordering_key", "is required"},
	{"ordering_key with arrival", e("event_types[1].ordering_key", `"version"`), "event_types[1].ordering_key", `"version" must be empty when ordering = "arrival"`},
	{"ordering_key explode", e("event_types[0].ordering_key", `"versions[*]"`), "event_types[0].ordering_key", "[*] is not allowed here"},
	{"session_gap zero", e("event_types[1].session_gap", `"0s"`, "event_types[1].session_max", `"1m"`), "event_types[1].session_gap", `"0s" must be > 0`},
	{"session_gap missing", e("event_types[0].session_gap", deleteKey), "event_types[0].session_gap", "is required"},
	{"session_max missing", e("event_types[0].session_max", deleteKey), "event_types[0].session_max", "is required"},
	{"session_max below gap", e("event_types[0].session_max", `"1m"`), "event_types[0].session_max", `"1m" must be >= session_gap (2m)`},
	{"key_retention below max", e("event_types[0].key_retention", `"10m"`), "event_types[0].key_retention", `"10m" must be >= session_max (30m)`},
	{"eid_path explode", e("event_types[0].eid_path", `"ids[*]"`), "event_types[0].eid_path", `"ids[*]" must address one value`},
	{"occurred_at_path invalid", e("event_types[0].occurred_at_path", `"metadata..x"`), "event_types[0].occurred_at_path", "is not a valid path"},
	{"no tables", e("event_types[1].tables", deleteKey), "event_types[1].tables", "no tables"},
	{"table reserved name", e("event_types[0].tables[1].name", `"_rejected"`), "event_types[0].tables[1].name", `"_rejected" is reserved`},
	{"table name pattern", e("event_types[0].tables[1].name", `"article-size"`), "event_types[0].tables[1].name", `"article-size" is not a table name`},
	{"table name duplicate", e("event_types[0].tables[1].name", `"article"`), "event_types[0].tables[1].name", `"article"`},
	{"table name missing", e("event_types[0].tables[1].name", deleteKey), "event_types[0].tables[1].name", "required"},
	{"no columns", e("event_types[1].tables[0].columns", "[]"), "event_types[1].tables[0].columns", "no columns"},
	{"column path invalid", e("event_types[0].tables[1].columns[2].path", `"sizes[*.qty"`), "event_types[0].tables[1].columns[2].path", `"sizes[*.qty" is not a valid path`},
	{"column path off chain", e("event_types[0].tables[1].columns[2].path", `"colors[*].qty"`), "event_types[0].tables[1].columns[2].path", "one array chain"},
	{"column type unknown", e("event_types[0].tables[0].columns[1].type", `"float"`), "event_types[0].tables[0].columns[1].type", `"float" is not a type`},
	{"column source unknown", e("event_types[0].tables[0].columns[1].source", `"nowhere"`), "event_types[0].tables[0].columns[1].source", `"nowhere" is not a source`},
	{"column name duplicate", e("event_types[0].tables[0].columns[1].name", `"Article_ID"`), "event_types[0].tables[0].columns[1].name", `"Article_ID" duplicates column 0`},
	{"column name missing", e("event_types[0].tables[0].columns[1].name", deleteKey), "event_types[0].tables[0].columns[1].name", "required"},
}

func TestValidateRules(t *testing.T) {
	groups := map[string][]ruleCase{
		"daemon": daemonRules, "nakadi": nakadiRules, "storage": storageRules, "csv": csvRules,
		"notify": notifyRules, "checkpoint": checkpointRules, "event_types": eventTypeRules,
	}
	for group, cases := range groups {
		for _, tc := range cases {
			t.Run(group+"/"+tc.name, func(t *testing.T) {
				ps := problemsOf(t, edited(t, tc.edits), ForRun)
				if len(ps) != 1 || ps[0].Key != tc.key || !strings.Contains(ps[0].String(), tc.want) {
					t.Fatalf("want one problem at %s containing %q, got %d:\n%s", tc.key, tc.want, len(ps), lines(ps))
				}
			})
		}
	}
}

func lines(ps Problems) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

func TestValidateReportsEveryProblem(t *testing.T) {
	edits := e(
		"daemon.log_level", `"loud"`,
		"nakadi.batch_limit", "0",
		"storage.url", `"gs://x"`,
		"event_types[1].session_gap", `"0s"`,
		"event_types[0].tables[1].columns[2].path", `"sizes[*.qty"`,
		"event_types[0].tables[0].columns[0].colour", `"red"`,
	)
	ps := problemsOf(t, edited(t, edits), ForRun)
	want := []string{
		`event_types[0].tables[0].columns[0].colour: unknown key`,
		`daemon.log_level: "loud" must be one of`,
		`nakadi.batch_limit: 0 must be >= 1`,
		`storage.url: "gs://x" must be an s3:// or file:// URL`,
		`event_types[0].tables[1].columns[2].path: "sizes[*.qty" is not a valid path`,
		`event_types[1].session_gap: "0s" must be > 0`,
	}
	if len(ps) != len(want) {
		t.Fatalf("want %d problems, got %d:\n%s", len(want), len(ps), lines(ps))
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].String(), w) {
			t.Errorf("problem %d = %q, want prefix %q", i, ps[i], w)
		}
	}
}

func TestValidateNeverPrintsURLPasswords(t *testing.T) {
	for _, key := range []string{"nakadi.url", "storage.url", "storage.endpoint", "notify.nats_url", "checkpoint.url"} {
		for _, v := range []string{`"https://u:hunter2@host"`, `"s3://u:hunter2@bucket"`, `"nats://u:hunter2@host:4222"`, `"%zz://u:hunter2@host"`,
			`"https://hunter2@host"`, `"file://hunter2@/srv"`, `"nats://h1:4222,nats://u:hunter2@h2:4222"`, `"s3://u/x:hunter2@bucket"`} {
			ps := problemsOf(t, edited(t, e(key, v)), ForRun)
			if len(ps) == 0 {
				t.Errorf("%s = %s: no problem reported", key, v)
			}
			if strings.Contains(ps.Error(), "hunter2") {
				t.Errorf("%s = %s: the password is printed: %v", key, v, ps)
			}
		}
	}
}

func TestDemoModeAllowsMissingNakadiURL(t *testing.T) {
	data := edited(t, e("nakadi.url", deleteKey))
	if ps := problemsOf(t, data, ForDemo); ps != nil {
		t.Fatalf("ForDemo: %v", ps)
	}
	if ps := problemsOf(t, data, ForRun); len(ps) != 1 || ps[0].Key != "nakadi.url" {
		t.Fatalf("ForRun: want nakadi.url required, got %v", ps)
	}
}
