package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// NoticeVersion is the version of the notice schema written by Marshal.
const NoticeVersion = 1

// TimeFormat is how notice times are written: UTC, microseconds, like the
// CSV timestamp columns (docs/mapping.md).
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// Column is one CSV column as the DWH sees it.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Notice is the delivery notice of one stored file (docs/files-and-notices.md).
type Notice struct {
	Version     int    // 0 is written as NoticeVersion
	ID          string // the object key; also the Nats-Msg-Id
	URL         string // s3://bucket/prefix/key or file:///dir/key
	EventType   string
	Table       string
	Kind        string // main | correction | rejected
	Partition   string // Nakadi partition
	Writer      string
	Seq         uint64
	Rows        int64 // data rows, header excluded
	Events      int64 // events the rows came from
	Bytes       int64 // stored object size (after compression)
	SHA256      string
	Compression string // none | gzip
	Header      bool
	Columns     []Column
	// MinOccurredAt and MaxOccurredAt span metadata.occurred_at of the
	// file's events; the zero time (no event carried one) is written as
	// JSON null, never omitted, so every notice has the same keys.
	MinOccurredAt time.Time
	MaxOccurredAt time.Time
	CreatedAt     time.Time // when the file was sealed
}

// wireNotice fixes the JSON field order of docs/files-and-notices.md.
type wireNotice struct {
	Version       int      `json:"version"`
	ID            string   `json:"id"`
	URL           string   `json:"url"`
	EventType     string   `json:"event_type"`
	Table         string   `json:"table"`
	Kind          string   `json:"kind"`
	Partition     string   `json:"partition"`
	Writer        string   `json:"writer"`
	Seq           uint64   `json:"seq"`
	Rows          int64    `json:"rows"`
	Events        int64    `json:"events"`
	Bytes         int64    `json:"bytes"`
	SHA256        string   `json:"sha256"`
	Compression   string   `json:"compression"`
	Header        bool     `json:"header"`
	Columns       []Column `json:"columns"`
	MinOccurredAt *string  `json:"min_occurred_at"`
	MaxOccurredAt *string  `json:"max_occurred_at"`
	CreatedAt     *string  `json:"created_at"`
}

// Marshal renders the notice as one line of JSON without a trailing
// newline. The output depends only on the notice's values, so a repeated
// notice is byte-identical.
func (n Notice) Marshal() []byte {
	w := wireNotice{
		Version: n.Version, ID: n.ID, URL: n.URL, EventType: n.EventType, Table: n.Table, Kind: n.Kind,
		Partition: n.Partition, Writer: n.Writer, Seq: n.Seq, Rows: n.Rows, Events: n.Events, Bytes: n.Bytes,
		SHA256: n.SHA256, Compression: n.Compression, Header: n.Header, Columns: n.Columns,
		MinOccurredAt: formatTime(n.MinOccurredAt), MaxOccurredAt: formatTime(n.MaxOccurredAt),
		CreatedAt: formatTime(n.CreatedAt),
	}
	if w.Version == 0 {
		w.Version = NoticeVersion
	}
	if w.Columns == nil {
		w.Columns = []Column{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		panic(fmt.Sprintf("notify: marshal notice: %v", err)) // only plain values: cannot happen
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// ParseNotice decodes a notice written by Marshal (for loaders and tests).
func ParseNotice(b []byte) (Notice, error) {
	var w wireNotice
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Notice{}, fmt.Errorf("notify: parse notice: %w", err)
	}
	n := Notice{
		Version: w.Version, ID: w.ID, URL: w.URL, EventType: w.EventType, Table: w.Table, Kind: w.Kind,
		Partition: w.Partition, Writer: w.Writer, Seq: w.Seq, Rows: w.Rows, Events: w.Events, Bytes: w.Bytes,
		SHA256: w.SHA256, Compression: w.Compression, Header: w.Header, Columns: w.Columns,
	}
	var err error
	for _, f := range []struct {
		dst *time.Time
		src *string
	}{{&n.MinOccurredAt, w.MinOccurredAt}, {&n.MaxOccurredAt, w.MaxOccurredAt}, {&n.CreatedAt, w.CreatedAt}} {
		if f.src != nil {
			if *f.dst, err = time.Parse(time.RFC3339Nano, *f.src); err != nil {
				return Notice{}, fmt.Errorf("notify: parse notice: %w", err)
			}
		}
	}
	return n, nil
}

func formatTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(TimeFormat)
	return &s
}
