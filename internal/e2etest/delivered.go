// Package e2etest holds what the end-to-end, crash and fleet tests share:
// the configs and the article emulator they run, and the independent model
// they check delivered files, notices and counters against. Only tests
// import it.
package e2etest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"io"
	"io/fs"
	"materializer/internal/articles"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"materializer/pipeline/notify"
)

// File is one file found in a file:// target.
type File struct {
	Key       string
	Kind      string // main | correction | rejected
	Table     string
	Partition string
	Writer    string
	Seq       int
	Header    []string
	Rows      [][]string
	Raw       []byte
}

// ReadDelivered reads every file under a file:// target root.
func ReadDelivered(t testing.TB, root string) []File {
	t.Helper()
	var out []File
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && path != root {
			if d.IsDir() {
				return filepath.SkipDir // a store's own metadata (versitygw), temp files
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		key, _ := filepath.Rel(root, path)
		out = append(out, ParseDelivered(t, key, raw))
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ParseDelivered decodes one delivered object: its key, gzip, CSV with header.
func ParseDelivered(t testing.TB, key string, raw []byte) File {
	t.Helper()
	parts := strings.Split(key, "/")
	if len(parts) != 5 || !strings.HasPrefix(parts[3], "dt=") {
		t.Fatalf("object key %q does not follow {event_type}/{table}/{kind}/dt=…/{name}", key)
	}
	f := File{Key: key, Table: parts[1], Kind: parts[2], Raw: raw}
	// {event_type}.{table}.{kind}.p{partition}.{writer}.{seq}.csv[.gz]
	name := strings.Split(strings.TrimPrefix(parts[4], strings.Join(parts[:3], ".")+"."), ".")
	if len(name) < 4 || !strings.HasPrefix(name[0], "p") || len(name[2]) != 10 {
		t.Fatalf("object name %q does not follow {event_type}.{table}.{kind}.p{partition}.{writer}.{seq}.csv[.gz]", parts[4])
	}
	f.Partition, f.Writer = name[0][1:], name[1]
	f.Seq, _ = strconv.Atoi(name[2])
	data := raw
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: not a valid gzip stream: %v", key, err)
		}
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: not valid CSV: %v", key, err)
	}
	if len(recs) < 2 {
		t.Fatalf("%s: %d records: a delivered file must have a header and rows", key, len(recs))
	}
	f.Header, f.Rows = recs[0], recs[1:]
	return f
}

// checkShape: every row has the file's columns (a file never mixes two
// mappings).
func (f File) checkShape(t testing.TB) {
	t.Helper()
	for i, r := range f.Rows {
		if len(r) != len(f.Header) {
			t.Errorf("%s: row %d has %d fields, the header %d (%v): rows of two mappings in one file", f.Key, i+1, len(r), len(f.Header), f.Header)
			return
		}
	}
}

// column returns the index of a header column.
func (f File) Column(t testing.TB, name string) int {
	for i, h := range f.Header {
		if h == name {
			return i
		}
	}
	t.Fatalf("%s: no column %q in %v", f.Key, name, f.Header)
	return -1
}

// Expectation is what the generated events must produce,
// with every session closed (by a flush) at the end.
type Expectation struct {
	Newest      map[int]int    // article → highest valid version
	Corrections map[[2]int]int // (article, version) → count
	Rejected    int
	Duplicates  int
	Received    int
}

func Expect(events []articles.Event) Expectation {
	x := Expectation{Newest: map[int]int{}, Corrections: map[[2]int]int{}}
	for _, a := range events {
		x.Received++
		switch a.Kind {
		case "new":
			x.Newest[a.Article] = max(x.Newest[a.Article], a.Version)
		case "out-of-order", "conflict":
			x.Corrections[[2]int{a.Article, a.Version}]++
		case "duplicate":
			x.Duplicates++
		case "malformed":
			x.Rejected++
		}
	}
	return x
}

// CheckDelivered asserts the compaction outcome on the delivered files: the last
// main row of every article is its newest version, the correction rows are
// exactly the out-of-order and conflicting events, every malformed event is
// in a rejected file.
func CheckDelivered(t testing.TB, files []File, x Expectation) {
	t.Helper()
	lastMain := map[int][2]int{} // article → (seq, version)
	corrections := map[[2]int]int{}
	rejected := 0
	for _, f := range files {
		switch {
		case f.Kind == "main" && f.Table == "article":
			ai, vi := f.Column(t, "article_id"), f.Column(t, "version")
			for _, r := range f.Rows {
				id, _ := strconv.Atoi(r[ai])
				v, _ := strconv.Atoi(r[vi])
				if prev, ok := lastMain[id]; !ok || f.Seq > prev[0] || f.Seq == prev[0] && v > prev[1] {
					lastMain[id] = [2]int{f.Seq, v}
				}
			}
		case f.Kind == "correction" && f.Table == "article":
			ai, vi := f.Column(t, "article_id"), f.Column(t, "version")
			for _, r := range f.Rows {
				id, _ := strconv.Atoi(r[ai])
				v, _ := strconv.Atoi(r[vi])
				corrections[[2]int{id, v}]++
			}
		case f.Kind == "rejected":
			rejected += len(f.Rows)
		}
	}
	for id, v := range x.Newest {
		if got := lastMain[id][1]; got != v {
			t.Errorf("article %d: newest main row has version %d, want %d", id, got, v)
		}
	}
	if len(lastMain) != len(x.Newest) {
		t.Errorf("main rows for %d articles, want %d", len(lastMain), len(x.Newest))
	}
	for k, n := range x.Corrections {
		if corrections[k] != n {
			t.Errorf("article %d version %d: %d correction rows, want %d", k[0], k[1], corrections[k], n)
		}
	}
	for k, n := range corrections {
		if x.Corrections[k] == 0 {
			t.Errorf("article %d version %d: %d unexpected correction rows", k[0], k[1], n)
		}
	}
	if rejected != x.Rejected {
		t.Errorf("%d rejected rows, want %d", rejected, x.Rejected)
	}
}

// CheckNotices asserts one notice per delivered file, matching its bytes.
func CheckNotices(t testing.TB, natsURL string, files []File) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "MATERIALIZER_FILES")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	notices := map[string]notify.Notice{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		n, err := notify.ParseNotice(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := notices[n.ID]; dup {
			t.Errorf("two notices for %s", n.ID)
		}
		if m.Header.Get("Nats-Msg-Id") != n.ID || m.Subject != "materializer.files."+n.EventType {
			t.Errorf("notice %s: Msg-Id %q subject %q", n.ID, m.Header.Get("Nats-Msg-Id"), m.Subject)
		}
		notices[n.ID] = n
	}
	for _, f := range files {
		n, ok := notices[f.Key]
		if !ok {
			t.Errorf("no notice for %s", f.Key)
			continue
		}
		sum := sha256.Sum256(f.Raw)
		if n.SHA256 != hex.EncodeToString(sum[:]) || n.Bytes != int64(len(f.Raw)) || n.Rows != int64(len(f.Rows)) {
			t.Errorf("notice of %s: sha256 %s bytes %d rows %d; file has %d bytes, %d rows",
				f.Key, n.SHA256, n.Bytes, n.Rows, len(f.Raw), len(f.Rows))
		}
		delete(notices, f.Key)
	}
	for id := range notices {
		t.Errorf("notice %s names no delivered file", id)
	}
}
