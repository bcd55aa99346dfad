package load_test

import (
	"context"
	"strings"
	"testing"

	"materializer/pipeline/load"
	"materializer/pipeline/notify"
)

// A corrupted file, a missing one and one with other columns are not
// acked: each is retried with backoff (reported in the status) and parked
// after load.max_attempts, while the files around them load. Once the
// object is mended, a replay loads the parked notice.
func TestBadFilesAreParked(t *testing.T) {
	r := newRig(t, false, "max_attempts = 3\nbatch_files = 4")
	good1 := r.put(fileSpec{table: "article", kind: "main", rows: [][]string{art("1", "a", "1", "1.00")}})
	corrupt := r.put(fileSpec{table: "article", kind: "main", rows: [][]string{art("2", "b", "1", "1.00")}})
	missing := r.put(fileSpec{table: "article", kind: "main", rows: [][]string{art("3", "c", "1", "1.00")}})
	columns := r.put(fileSpec{table: "article", kind: "main", rows: [][]string{art("4", "d", "1", "1.00")}})
	good2 := r.put(fileSpec{table: "article_size", kind: "main", rows: [][]string{size("1", "40", "1", "1")}})
	original := readObject(t, r, corrupt)
	r.corrupt(corrupt, []byte("not the file the notice describes"))
	if err := r.store.Delete(context.Background(), missing.ID); err != nil {
		t.Fatal(err)
	}
	columns.Columns = append([]notify.Column{}, columns.Columns[:3]...)
	l, _ := r.start(nil)
	r.publish(good1, corrupt, missing, columns, good2)
	r.waitFor("three parked notices", func() bool { return l.Status().ParkedFiles == 3 })
	r.waitLoaded("ods", 2)
	r.waitFor("no notice pending", func() bool { return l.Status().NoticesPending == 0 })
	st := l.Status()
	if st.FilesLoaded != 2 || len(st.Retrying) != 0 || st.LastError == nil || len(st.Parked) != 3 {
		t.Errorf("status %+v", st)
	}
	reasons := r.sql("SELECT id || ' ' || attempts || ' ' || reason FROM ods.materializer_failed_files ORDER BY id")
	for _, want := range []string{
		corrupt.ID + " 3 load: bad file: " + corrupt.URL + ": the object has 33 bytes",
		missing.ID + " 3 load: bad file: " + missing.URL + ": the object does not exist",
		columns.ID + " 3 load: bad file: " + columns.ID + ": the file's columns (article_id int, brand string, version int) are not those of table ods.article (article_id int, brand string, version int, price decimal, occurred_at timestamp)",
	} {
		if !strings.Contains(reasons, want) {
			t.Errorf("parked:\n%s\nlacks %q", reasons, want)
		}
	}
	if got := r.sql("SELECT string_agg(article_id::text, ',' ORDER BY article_id) FROM ods.article"); got != "1" {
		t.Errorf("articles %q: a bad file was partly applied", got)
	}
	r.corrupt(corrupt, original)
	res, err := l.Replay(context.Background(), corrupt.ID)
	if err != nil || res.Files != 1 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if got := r.sql("SELECT string_agg(article_id::text, ',' ORDER BY article_id) FROM ods.article"); got != "1,2" {
		t.Errorf("after the replay: articles %q", got)
	}
	if got := r.sql("SELECT count(*) FROM ods.materializer_failed_files"); got != "2" {
		t.Errorf("after the replay: %s parked", got)
	}
	if _, err := l.Replay(context.Background(), "nope"); !errorsIs(err, load.ErrNotParked) {
		t.Errorf("replay of an unknown id: %v", err)
	}
}

func readObject(t *testing.T, r *rig, n notify.Notice) []byte {
	t.Helper()
	rc, err := r.store.Get(context.Background(), n.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		k, err := rc.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return []byte(b.String())
}

// While a bad file is retried its notice stays unacked (pending), the
// status names it with its attempts, and nothing of it is applied; once
// the object is mended the next attempt loads it.
func TestBadFileIsRetriedNotAcked(t *testing.T) {
	r := newRig(t, true, "max_attempts = 1000")
	n := r.put(fileSpec{table: "article", kind: "main", rows: [][]string{art("1", "a", "1", "1.00")}})
	original := readObject(t, r, n)
	r.corrupt(n, original[:len(original)-3])
	l, _ := r.start(nil)
	r.publish(n)
	r.waitFor("three failed attempts", func() bool {
		st := l.Status()
		return len(st.Retrying) == 1 && st.Retrying[0].Attempts >= 3 && st.NoticesPending == 1
	})
	st := l.Status()
	if st.Retrying[0].ID != n.ID || !strings.Contains(st.Retrying[0].Error, "bytes with sha256") || st.FilesLoaded != 0 {
		t.Errorf("status %+v", st)
	}
	if got := r.sql("SELECT count(*) FROM ods.article"); got != "0" {
		t.Errorf("%s rows of a file that does not match its notice", got)
	}
	r.corrupt(n, original)
	r.waitLoaded("ods", 1)
	r.waitFor("nothing retrying or pending", func() bool {
		st := l.Status()
		return len(st.Retrying) == 0 && st.NoticesPending == 0 && st.ParkedFiles == 0
	})
}
