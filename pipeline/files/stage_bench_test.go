package files

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"materializer/state"
)

// csvRows makes n realistic CSV rows (~100 bytes each).
func csvRows(n, seed int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		k := seed*n + i
		b = strconv.AppendInt(b, int64(1000000+k%100000), 10)
		b = append(b, ",acme sports,"...)
		b = strconv.AppendInt(b, int64(k%97), 10)
		b = append(b, ",19.99,EUR,2026-11-21T12:00:00.123000Z,"...)
		b = append(b, fmt.Sprintf("%08x-0000-4000-8000-%012x", k, k)...)
		b = append(b, '\n')
	}
	return b
}

// BenchmarkStageWrite measures the staging-file path of a step: rows
// appended, compressed as one gzip member per step (level 1), written,
// fsynced, and rolled at 64 MiB. The figure is MB/s of CSV (before
// compression) on one goroutine.
func BenchmarkStageWrite(b *testing.B) {
	for _, comp := range []string{"gzip", "none"} {
		b.Run(comp, func(b *testing.B) {
			s, err := Open(Options{Dir: b.TempDir(), Compression: comp, Level: 1}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			id := state.FileID{EventType: "article.updated", Table: "article", Kind: KindMain, Partition: "0"}
			steps := [][]byte{csvRows(10000, 1), csvRows(10000, 2), csvRows(10000, 3)} // ~1 MB each
			var seq uint64
			b.SetBytes(int64(len(steps[0])))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok := s.Lookup(id); !ok {
					seq++
					rec := state.File{ID: id, Seq: seq, Name: Name(id, "w", seq, comp), Header: true, Compression: comp, Created: time.Now().UnixNano()}
					if err := s.Create(rec, []byte("a,b,c,d,e,f,g\n")); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Append(id, steps[i%len(steps)], 10000, 10000, 0); err != nil {
					b.Fatal(err)
				}
				recs, err := s.Flush()
				if err != nil {
					b.Fatal(err)
				}
				if recs[0].Length >= 64<<20 {
					if _, err := s.Seal(id); err != nil {
						b.Fatal(err)
					}
					if err := s.Remove(recs[0].Name); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
