package notify_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"materializer/pipeline/notify"
)

func sampleNotice() notify.Notice {
	cet := time.FixedZone("CET", 3600)
	return notify.Notice{
		ID:        "article.updated/article/main/dt=2026-11-21/article.updated.article.main.p3.w1.0000000042.csv.gz",
		URL:       "s3://bucket/pre/article.updated/article/main/dt=2026-11-21/article.updated.article.main.p3.w1.0000000042.csv.gz",
		EventType: "article.updated", Table: "article", Kind: "main", Partition: "3", Writer: "w1", Seq: 42,
		Rows: 1234, Events: 1000, Bytes: 56789, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Compression: "gzip", Header: true,
		Columns:       []notify.Column{{Name: "article_id", Type: "int"}, {Name: "brand<&>", Type: "string"}},
		MinOccurredAt: time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC),
		MaxOccurredAt: time.Date(2026, 11, 21, 11, 5, 0, 0, cet),
		CreatedAt:     time.Date(2026, 11, 21, 10, 15, 1, 500000000, time.UTC),
	}
}

const sampleJSON = `{"version":1,` +
	`"id":"article.updated/article/main/dt=2026-11-21/article.updated.article.main.p3.w1.0000000042.csv.gz",` +
	`"url":"s3://bucket/pre/article.updated/article/main/dt=2026-11-21/article.updated.article.main.p3.w1.0000000042.csv.gz",` +
	`"event_type":"article.updated","table":"article","kind":"main","partition":"3","writer":"w1","seq":42,` +
	`"rows":1234,"events":1000,"bytes":56789,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",` +
	`"compression":"gzip","header":true,"columns":[{"name":"article_id","type":"int"},{"name":"brand<&>","type":"string"}],` +
	`"min_occurred_at":"2026-11-21T10:00:00.123456Z","max_occurred_at":"2026-11-21T10:05:00.000000Z",` +
	`"created_at":"2026-11-21T10:15:01.500000Z"}`

func TestNoticeMarshal(t *testing.T) {
	got := sampleNotice().Marshal()
	if string(got) != sampleJSON {
		t.Fatalf("Marshal =\n%s\nwant\n%s", got, sampleJSON)
	}
	if again := sampleNotice().Marshal(); !bytes.Equal(again, got) {
		t.Fatal("a repeated notice is not byte-identical")
	}
}

// TestNoticeFieldOrder checks the key order against docs/files-and-notices.md.
func TestNoticeFieldOrder(t *testing.T) {
	want := []string{"version", "id", "url", "event_type", "table", "kind", "partition", "writer", "seq",
		"rows", "events", "bytes", "sha256", "compression", "header", "columns",
		"min_occurred_at", "max_occurred_at", "created_at"}
	dec := json.NewDecoder(bytes.NewReader(notify.Notice{}.Marshal()))
	dec.Token() // {
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys %v\nwant %v", keys, want)
	}
}

func TestNoticeUnknownTimesAreNull(t *testing.T) {
	n := notify.Notice{ID: "k", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	want := `{"version":1,"id":"k","url":"","event_type":"","table":"","kind":"","partition":"","writer":"",` +
		`"seq":0,"rows":0,"events":0,"bytes":0,"sha256":"","compression":"","header":false,"columns":[],` +
		`"min_occurred_at":null,"max_occurred_at":null,"created_at":"2026-01-02T03:04:05.000000Z"}`
	if got := string(n.Marshal()); got != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", got, want)
	}
}

func TestParseNoticeRoundTrip(t *testing.T) {
	in := sampleNotice()
	got, err := notify.ParseNotice(in.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), in.Marshal()) || got.Version != 1 {
		t.Fatalf("round trip: %+v", got)
	}
	if !got.MaxOccurredAt.Equal(in.MaxOccurredAt) || !got.MinOccurredAt.Equal(in.MinOccurredAt.Truncate(time.Microsecond)) {
		t.Fatalf("times: %v %v", got.MinOccurredAt, got.MaxOccurredAt)
	}
	if _, err := notify.ParseNotice([]byte(`{"version":1,"surprise":true}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestSubject(t *testing.T) {
	if got := notify.Subject("materializer.files", "article.updated"); got != "materializer.files.article.updated" {
		t.Fatalf("Subject = %q", got)
	}
}
