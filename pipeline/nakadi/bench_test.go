package nakadi

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchStream builds one batch line of n events of about size bytes each.
func benchLine(n, size int) []byte {
	var sb bytes.Buffer
	sb.WriteString(`{"cursor":{"partition":"3","offset":"001-0001-000000000000012345","event_type":"article.updated","cursor_token":"b75c3102-98a4-4385-a5fd-b96f1d7872f2"},"events":[`)
	pad := strings.Repeat("lorem ipsum \\\"dolor\\\" sit amet ", size/30)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		e := fmt.Sprintf(`{"metadata":{"eid":"105a76d8-db49-4144-ace7-%012d","occurred_at":"2024-04-11T08:00:00.123Z","received_at":"2024-04-11T08:00:00.456Z","event_type":"article.updated","partition":"3","version":"1.0.0","flow_id":"JAh6xH4OQhCJ9PutIV_RYw"},"article_id":%d,"version":%d,"brand":"Brand [x] {y}","price":{"amount":"12.99","currency":"EUR"},"sizes":[{"size":"M","qty":3},{"size":"L","qty":0}],"text":"`, i, i, i)
		sb.WriteString(e)
		sb.WriteString(pad[:max(size-len(e)-3, 0)])
		sb.WriteString(`"}`)
	}
	sb.WriteString("]}\n")
	return sb.Bytes()
}

// loopReader serves the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

var _ io.Reader = (*loopReader)(nil)

// BenchmarkReader measures the stream reader + batch-line parser on ~1 KB
// events in batches of 500: one op is one batch line.
func BenchmarkReader(b *testing.B) {
	line := benchLine(500, 1024)
	r := newStreamReader(&loopReader{data: line}, readBufferSize, 0)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	events, n := 0, 0
	cpu0 := processCPU()
	for b.Loop() {
		batch, err := r.next()
		if err != nil || len(batch.Events) != 500 {
			b.Fatalf("next: %v", err)
		}
		events += len(batch.Events)
		n++
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(line))/500, "B/event")
	// Per core: bytes per CPU-second of the whole process (parser and GC),
	// which a loaded machine does not distort the way wall time is.
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(n*len(line))/cpu.Seconds()/1e6, "MB/cpu-s")
		b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
	}
}

// BenchmarkParse measures the parser alone on the same line (no copy).
func BenchmarkParse(b *testing.B) {
	line := benchLine(500, 1024)
	line = line[:len(line)-1]
	var p parser
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		var batch Batch
		if err := p.parse(line, &batch); err != nil || len(p.spans) != 500 {
			b.Fatalf("parse: %v", err)
		}
	}
}
