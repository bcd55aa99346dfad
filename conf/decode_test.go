package conf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStrict(t *testing.T) {
	cases := []struct {
		name  string
		edits map[string]string
		key   string
		want  string
	}{
		{"unknown key with suggestion", e("daemon.data_dri", `"/x"`), "daemon.data_dri", `unknown key (did you mean "data_dir"?)`},
		{"unknown key far from any", e("nakadi.zzzzzzzz", "1"), "nakadi.zzzzzzzz", "unknown key"},
		{"unknown section", e("metrics.port", "9090"), "metrics", "unknown key"},
		{"unknown event type key", e("event_types[1].sessiongap", `"1m"`), "event_types[1].sessiongap", `unknown key (did you mean "session_gap"?)`},
		{"unknown column key", e("event_types[0].tables[1].columns[2].colour", `"red"`), "event_types[0].tables[1].columns[2].colour", "unknown key"},
		{"string for int", e("nakadi.batch_limit", `"500"`), "nakadi.batch_limit", `"500" must be an integer`},
		{"float for int", e("checkpoint.keep", "1.5"), "checkpoint.keep", "1.5 must be an integer"},
		{"string for bool", e("csv.header", `"yes"`), "csv.header", `"yes" must be true or false`},
		{"int for string", e("daemon.log_level", "5"), "daemon.log_level", "5 must be a string"},
		{"int for duration", e("event_types[0].session_gap", "120"), "event_types[0].session_gap", `120 must be a duration string like "5m"`},
		{"bool for size", e("storage.roll_max_bytes", "true"), "storage.roll_max_bytes", "true must be a size"},
		{"string for list", e("event_types[0].partition_key", `"article_id"`), "event_types[0].partition_key", `"article_id" must be an array of strings`},
		{"int in list", e("event_types[0].partition_key", `[1]`), "event_types[0].partition_key[0]", "1 must be a string"},
		{"scalar for section", e("daemon", `"x"`), "daemon", `"x" must be a table`},
		{"scalar for tables", e("event_types[0].tables", "5"), "event_types[0].tables", "5 must be an array of tables"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := problemsOf(t, edited(t, tc.edits), ForRun)
			if len(ps) != 1 || ps[0].Key != tc.key || !strings.Contains(ps[0].String(), tc.want) {
				t.Fatalf("want one problem at %s containing %q, got %d:\n%s", tc.key, tc.want, len(ps), lines(ps))
			}
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	ps := problemsOf(t, []byte("[daemon]\ndata_dir = \"/x\"\nlog_level = info\n"), ForRun)
	if len(ps) != 1 || ps[0].Key != "line 3" || !strings.Contains(ps[0].Msg, "TOML syntax") {
		t.Fatalf("got %v", ps)
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.toml")
	_, err := Load(path, ForRun)
	if !errors.Is(err, ErrRead) || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v", err)
	}
}

func TestDefaultsApply(t *testing.T) {
	cfg, err := Parse(edited(t, nil), ForRun)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Daemon.DrainTimeout.Duration(); got != 90*time.Second {
		t.Errorf("drain_timeout = %v", got)
	}
	if got := cfg.Storage.MaxStagedBytes.Bytes(); got != 10<<30 {
		t.Errorf("max_staged_bytes = %d", got)
	}
	if !cfg.CSV.Header || cfg.CSV.Delimiter != "," || cfg.Nakadi.BatchLimit != 500 {
		t.Errorf("csv/nakadi defaults: %+v %+v", cfg.CSV, cfg.Nakadi)
	}
	et := cfg.EventTypes[0]
	if et.KeyRetention.Duration() != DefaultKeyRetention || et.EIDPath != DefaultEIDPath || et.OccurredAtPath != DefaultOccurredAtPath {
		t.Errorf("event type defaults: %+v", et)
	}
}

func TestShippedConfigs(t *testing.T) {
	for _, tc := range []struct {
		file string
		mode Mode
	}{{"example.toml", ForRun}, {"demo.toml", ForDemo}} {
		cfg, err := Load(tc.file, tc.mode)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if len(cfg.EventTypes) == 0 {
			t.Fatalf("%s: no event types", tc.file)
		}
	}
}

// TestExampleSetsEveryKey keeps example.toml a complete, commented tour of
// the schema: every key of Reference is written in it at least once.
func TestExampleSetsEveryKey(t *testing.T) {
	data, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Reference {
		name := k.Key[strings.LastIndex(k.Key, ".")+1:]
		if !strings.Contains(string(data), name+" ") && !strings.Contains(string(data), "["+k.Key+"]") {
			t.Errorf("example.toml does not set %s", k.Key)
		}
	}
}
