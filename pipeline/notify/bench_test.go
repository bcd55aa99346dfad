package notify_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"materializer/internal/natstest"
	"materializer/pipeline/notify"
)

func benchNotice(i int64) notify.Notice {
	return notify.Notice{
		ID:  fmt.Sprintf("article.updated/article/main/dt=2026-11-21/article.updated.article.main.p3.w1.%010d.csv.gz", i),
		URL: "s3://bucket/x", EventType: "article.updated", Table: "article", Kind: "main", Partition: "3",
		Writer: "w1", Seq: uint64(i), Rows: 1234, Events: 1000, Bytes: 56789, Compression: "gzip", Header: true,
		SHA256:        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Columns:       []notify.Column{{Name: "article_id", Type: "int"}, {Name: "brand", Type: "string"}},
		MinOccurredAt: time.Unix(1, 0), MaxOccurredAt: time.Unix(2, 0), CreatedAt: time.Unix(3, 0),
	}
}

// BenchmarkPublish: notices/s to an in-process JetStream (file storage),
// each waiting for its ack; sequential, and 8 publishers at once.
func BenchmarkPublish(b *testing.B) {
	srv := natstest.Start(b)
	p := connect(b, notify.Options{URLs: srv.URL()})
	var seq atomic.Int64
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := p.PublishNotice(ctxT(b), benchNotice(seq.Add(1))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notices/s")
	})
	b.Run("parallel8", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4) // 4 × GOMAXPROCS(2) = 8 publishers
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := p.PublishNotice(ctxT(b), benchNotice(seq.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notices/s")
	})
}

func BenchmarkNoticeMarshal(b *testing.B) {
	n := benchNotice(42)
	b.ReportAllocs()
	for b.Loop() {
		n.Marshal()
	}
}
