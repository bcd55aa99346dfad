package blobstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"materializer/pipeline/blobstore"
)

// TestContract runs the Store contract against every store.
func TestContract(t *testing.T) {
	t.Run("file", func(t *testing.T) { t.Parallel(); runContract(t, fileTarget()) })
	t.Run("gofakes3", func(t *testing.T) {
		t.Parallel()
		tg, _ := fakeTarget(t)
		runContract(t, tg)
	})
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		tg, _ := versityTarget(t)
		runContract(t, tg)
	})
}

func runContract(t *testing.T, tg target) {
	small := blobstore.Options{PartSize: 5 << 20, MultipartThreshold: 5 << 20}
	bs := tg.open(t, small)
	t.Run("PutHeadGetList", func(t *testing.T) { contractPut(t, bs) })
	t.Run("SameBytesAlreadyDelivered", func(t *testing.T) { contractSameBytes(t, bs) })
	t.Run("DifferentBytesConflict", func(t *testing.T) { contractConflict(t, bs) })
	t.Run("Multipart", func(t *testing.T) { contractMultipart(t, bs) })
	t.Run("DeleteIdempotent", func(t *testing.T) { contractDelete(t, bs) })
	t.Run("ListPrefix", func(t *testing.T) { contractList(t, bs) })
	t.Run("BadKeys", func(t *testing.T) { contractBadKeys(t, bs) })
	t.Run("Concurrent", func(t *testing.T) { contractConcurrent(t, bs) })
	t.Run("ShortSource", func(t *testing.T) { contractShortSource(t, bs) })
}

func put(t *testing.T, bs blobstore.Store, key string, data []byte) (blobstore.Stored, error) {
	t.Helper()
	return bs.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data)), blobstore.PutMeta{ContentType: "text/csv"})
}

func mustPut(t *testing.T, bs blobstore.Store, key string, data []byte) blobstore.Stored {
	t.Helper()
	st, err := put(t, bs, key, data)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return st
}

func readAll(t *testing.T, bs blobstore.Store, key string) []byte {
	t.Helper()
	rc, err := bs.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func contractPut(t *testing.T, bs blobstore.Store) {
	key := "article.updated/article/main/dt=2026-11-21/article.updated.article.main.p3.w1.0000000042.csv"
	data := []byte("article_id,brand\n1,acme\n2,\"a, b\"\n")
	st := mustPut(t, bs, key, data)
	if st.Key != key || st.Size != int64(len(data)) || st.SHA256 != sum(data) || st.AlreadyExisted {
		t.Fatalf("Stored = %+v", st)
	}
	if st.URL != bs.URL(key) || !strings.HasSuffix(st.URL, "/"+key) {
		t.Fatalf("URL = %q, URL(key) = %q", st.URL, bs.URL(key))
	}
	info, err := bs.Head(ctxT(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.LastModified.IsZero() {
		t.Fatalf("Head = %+v", info)
	}
	if strings.HasPrefix(st.URL, "s3://") && info.SHA256 != sum(data) {
		t.Fatalf("Head sha256 = %q, want %q", info.SHA256, sum(data))
	}
	if got := readAll(t, bs, key); !bytes.Equal(got, data) {
		t.Fatalf("Get = %q", got)
	}
	list, err := bs.List(ctxT(t), "article.updated/")
	if err != nil || len(list) != 1 || list[0].Key != key || list[0].Size != int64(len(data)) {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func contractSameBytes(t *testing.T, bs blobstore.Store) {
	data := []byte("a,b\n1,2\n")
	mustPut(t, bs, "same/x.csv", data)
	st := mustPut(t, bs, "same/x.csv", data)
	if !st.AlreadyExisted || st.SHA256 != sum(data) {
		t.Fatalf("second Put = %+v, want AlreadyExisted", st)
	}
}

func contractConflict(t *testing.T, bs blobstore.Store) {
	orig := []byte("a,b\n1,2\n")
	mustPut(t, bs, "conflict/x.csv", orig)
	for _, other := range [][]byte{[]byte("a,b\n1,3\n"), []byte("a,b\n1,2\n3,4\n")} {
		_, err := put(t, bs, "conflict/x.csv", other)
		if !errors.Is(err, blobstore.ErrConflict) || !errors.Is(err, blobstore.ErrPermanent) || blobstore.Retryable(err) {
			t.Fatalf("Put of other bytes: err = %v, want ErrConflict (permanent)", err)
		}
	}
	if got := readAll(t, bs, "conflict/x.csv"); !bytes.Equal(got, orig) {
		t.Fatalf("object was overwritten: %q", got)
	}
}

func contractMultipart(t *testing.T, bs blobstore.Store) {
	f, want := writeFile(t, 12<<20+123, 7) // three parts of 5 MiB, the last short
	st, err := bs.Put(ctxT(t), "big/x.csv", f, 12<<20+123, blobstore.PutMeta{})
	if err != nil || st.SHA256 != want || st.Size != 12<<20+123 {
		t.Fatalf("Put = %+v, %v", st, err)
	}
	if got := sum(readAll(t, bs, "big/x.csv")); got != want {
		t.Fatalf("stored sha256 %s, want %s", got, want)
	}
	st, err = bs.Put(ctxT(t), "big/x.csv", f, 12<<20+123, blobstore.PutMeta{})
	if err != nil || !st.AlreadyExisted {
		t.Fatalf("second Put = %+v, %v", st, err)
	}
	g, _ := writeFile(t, 12<<20+123, 8)
	if _, err := bs.Put(ctxT(t), "big/x.csv", g, 12<<20+123, blobstore.PutMeta{}); !errors.Is(err, blobstore.ErrConflict) {
		t.Fatalf("Put of other bytes: %v, want ErrConflict", err)
	}
}

func contractDelete(t *testing.T, bs blobstore.Store) {
	mustPut(t, bs, "del/x.csv", []byte("x\n"))
	for range 2 {
		if err := bs.Delete(ctxT(t), "del/x.csv"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := bs.Head(ctxT(t), "del/x.csv"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Head after delete: %v", err)
	}
	if _, err := bs.Get(ctxT(t), "del/x.csv"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
}

func contractList(t *testing.T, bs blobstore.Store) {
	keys := []string{"ls/b/2.csv", "ls/a/1.csv", "ls/a/10.csv", "ls/a.csv", "lsx/1.csv"}
	for _, k := range keys {
		mustPut(t, bs, k, []byte(k))
	}
	for prefix, want := range map[string]string{
		"ls/":    "ls/a.csv ls/a/1.csv ls/a/10.csv ls/b/2.csv",
		"ls/a":   "ls/a.csv ls/a/1.csv ls/a/10.csv",
		"ls/a/":  "ls/a/1.csv ls/a/10.csv",
		"ls/a/1": "ls/a/1.csv ls/a/10.csv",
		"nope/":  "",
	} {
		list, err := bs.List(ctxT(t), prefix)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range list {
			got = append(got, o.Key)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("List(%q) = %v, want %s", prefix, got, want)
		}
	}
}

func contractBadKeys(t *testing.T, bs blobstore.Store) {
	for _, key := range []string{"", "/abs", "a/../b", "../x", "a//b", "a/./b", "a/", "."} {
		_, err := put(t, bs, key, []byte("x"))
		if !errors.Is(err, blobstore.ErrBadKey) || !errors.Is(err, blobstore.ErrPermanent) {
			t.Errorf("Put(%q): %v, want ErrBadKey", key, err)
		}
	}
}

func contractConcurrent(t *testing.T, bs blobstore.Store) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			key := fmt.Sprintf("conc/%d.csv", i)
			for range 2 { // the second Put of each key races with the others' first
				if _, err := put(t, bs, key, []byte(key)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := bs.List(ctxT(t), "conc/")
	if err != nil || len(list) != 8 {
		t.Fatalf("List = %d objects, %v", len(list), err)
	}
}

func contractShortSource(t *testing.T, bs blobstore.Store) {
	_, err := bs.Put(ctxT(t), "short/x.csv", bytes.NewReader([]byte("abc")), 10, blobstore.PutMeta{})
	if !errors.Is(err, blobstore.ErrPermanent) {
		t.Fatalf("Put of a short source: %v, want permanent", err)
	}
	if _, err := bs.Head(ctxT(t), "short/x.csv"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("short source left an object: %v", err)
	}
}
