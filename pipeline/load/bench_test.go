package load_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"materializer/pipeline/notify"
)

// BenchmarkLoad measures the loader against a real PostgreSQL 15 with the
// demo's article tables: b.N pairs of main files (article: 1000 rows over
// 200k articles with rising versions; article_size: 0-3 rows per article)
// are announced at once and loaded, with one file per transaction and with
// load.batch_files = 16. It reports rows merged per second (main rows of
// both tables) and files per second, from the first notice to the last
// commit.
//
//	go test ./pipeline/load -run '^$' -bench BenchmarkLoad -benchtime 40x
func BenchmarkLoad(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch_files=%d", batch), func(b *testing.B) { benchLoad(b, batch) })
	}
}

func benchLoad(b *testing.B, batch int) {
	benchLoadWith(b, newRig(b, false, fmt.Sprintf("batch_files = %d", batch)))
}

func benchLoadWith(b *testing.B, r *rig) {
	version := map[int]int{}
	var ns []notify.Notice
	rows := 0
	next := 0
	for i := 0; i < b.N; i++ {
		var arts, sizes [][]string
		for k := 0; k < 1000; k++ {
			id := (next*7919)%200000 + 1
			next++
			version[id]++
			v := strconv.Itoa(version[id])
			sid := strconv.Itoa(id)
			arts = append(arts, art(sid, "brand "+sid, v, strconv.Itoa(10+id%90)+".50"))
			for s := 0; s < (id+version[id])%4; s++ {
				sizes = append(sizes, size(sid, strconv.Itoa(36+s), strconv.Itoa(s), v))
			}
		}
		ns = append(ns, r.put(fileSpec{table: "article", kind: "main", part: strconv.Itoa(i % 4), rows: arts}),
			r.put(fileSpec{table: "article_size", kind: "main", part: strconv.Itoa(i % 4), rows: sizes}))
		rows += len(arts) + len(sizes)
	}
	l, stop := r.start(nil)
	r.waitFor("the loader ready", l.Ready)
	b.ResetTimer()
	start := time.Now()
	r.publish(ns...)
	r.waitFor("every file loaded", func() bool { return l.Status().FilesLoaded == int64(len(ns)) })
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(len(ns))/elapsed.Seconds(), "files/s")
	b.ReportMetric(0, "ns/op")
}
