package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"materializer/internal/e2etest"
	"materializer/internal/pgtest"
	"materializer/pipeline/notify"
)

// A config without what the loader needs, and a DSN file that cannot be
// read, exit 2 before anything starts, naming the problem.
func TestLoadBadConfig(t *testing.T) {
	dir := t.TempDir()
	env := &loadEnv{t: t, dir: dir}
	path := filepath.Join(dir, "bad.toml")
	text := fmt.Sprintf("[nakadi]\nowning_application = \"x\"\n[storage]\nurl = \"file://%s\"\n%s", dir, strings.Replace(
		e2etest.LoadedArticleTOML, `{ name = "version",    path = "version",      type = "int" },`, "", 1))
	os.WriteFile(path, []byte(text), 0o644)
	code, _, stderr := runBinary(t, "load", "-config", path)
	for _, want := range []string{"notify.nats_url: is required by `materializer load`", "load.dsn_file: is required",
		`"version" has no column: ` + "`materializer load`" + ` needs a column with the ordering key path "version" in table "article_size"`} {
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, stderr)
		}
	}
	path = env.writeLoadConfig("nats://127.0.0.1:1", filepath.Join(dir, "missing.dsn"))
	code, _, stderr = runBinary(t, "load", "-config", path)
	if code != 2 || !strings.Contains(stderr, "load.dsn_file: "+filepath.Join(dir, "missing.dsn")+": no such file") {
		t.Errorf("unreadable DSN file: exit %d, stderr %q", code, stderr)
	}
}

// writeLoadConfig writes a loader config over dir/storage.
func (env *loadEnv) writeLoadConfig(natsURL, dsnFile string) string {
	path := filepath.Join(env.dir, "load.toml")
	text := fmt.Sprintf("[daemon]\nlog_format = \"json\"\n[nakadi]\nowning_application = \"x\"\n[storage]\nurl = \"file://%s\"\n"+
		"[notify]\nnats_url = %q\n[load]\ndsn_file = %q\nadmin_listen = \"127.0.0.1:0\"\n%s",
		filepath.Join(env.dir, "storage"), natsURL, dsnFile, e2etest.LoadedArticleTOML)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		env.t.Fatal(err)
	}
	return path
}

// `load -replay ID` loads a parked notice and removes it from
// materializer_failed_files (exit 0); an id that is not parked exits 2.
func TestLoadReplayFlag(t *testing.T) {
	env := &loadEnv{t: t, dir: t.TempDir(), pg: pgtest.Start(t)}
	dsn := filepath.Join(env.dir, "pg.dsn")
	os.WriteFile(dsn, []byte(env.pg.ConnString()), 0o600)
	path := env.writeLoadConfig("nats://127.0.0.1:1", dsn)
	code, _, stderr := runBinary(t, "load", "-config", path, "-replay", "nope")
	if code != 2 || !strings.Contains(stderr, `no parked notice with this id: "nope"`) {
		t.Fatalf("replay of an unknown id: exit %d, stderr %q", code, stderr)
	}
	key := "article.updated/article_size/main/dt=2026-12-07/article.updated.article_size.main.p0.w1.0000000001.csv"
	body := []byte("article_id,size,qty,version\n7,40,1,3\n7,41,2,3\n")
	file := filepath.Join(env.dir, "storage", key)
	os.MkdirAll(filepath.Dir(file), 0o755)
	os.WriteFile(file, body, 0o644)
	sum := sha256.Sum256(body)
	n := notify.Notice{ID: key, URL: "file://" + file, EventType: "article.updated", Table: "article_size", Kind: "main",
		Partition: "0", Writer: "w1", Seq: 1, Rows: 2, Events: 1, Bytes: int64(len(body)), SHA256: hex.EncodeToString(sum[:]),
		Compression: "none", Header: true, CreatedAt: time.Now(),
		Columns: []notify.Column{{Name: "article_id", Type: "int"}, {Name: "size", Type: "string"}, {Name: "qty", Type: "int"}, {Name: "version", Type: "int"}}}
	env.pg.MustExec(t, fmt.Sprintf("INSERT INTO ods.materializer_failed_files VALUES (%s, %s, 'was missing', 5, now())",
		pgtest.Literal(key), pgtest.Literal(string(n.Marshal()))))
	code, stdout, stderr := runBinary(t, "load", "-config", path, "-replay", key)
	if code != 0 || stdout != "loaded "+key+": 2 rows\n" {
		t.Fatalf("replay: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	got := env.pg.MustExec(t, "SELECT (SELECT string_agg(size, ',' ORDER BY size) FROM ods.article_size) || ' ' || "+
		"(SELECT count(*) FROM ods.materializer_failed_files) || ' ' || (SELECT count(*) FROM ods.materializer_loaded_files)")
	if got != "40,41 0 1\n" {
		t.Errorf("after the replay: sizes, parked, loaded = %q", got)
	}
}
