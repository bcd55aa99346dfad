package flatten

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"
)

// benchTable is a realistic child table: 15 columns, one exploded array of
// 3 elements (testdata/bench/article.json, about 1 KB).
var benchTable = TableSpec{Name: "article_size", Columns: []ColumnSpec{
	{Name: "article_id", Path: "article_id", Type: TypeInt, Required: true},
	{Name: "sku", Path: "sku"},
	{Name: "version", Path: "version", Type: TypeInt},
	{Name: "brand", Path: "brand"},
	{Name: "name", Path: "name"},
	{Name: "price", Path: "price.amount", Type: TypeDecimal},
	{Name: "currency", Path: "price.currency"},
	{Name: "active", Path: "active", Type: TypeBool},
	{Name: "occurred_at", Path: "metadata.occurred_at", Type: TypeTimestamp},
	{Name: "eid", Path: "metadata.eid"},
	{Name: "attributes", Path: "attributes", Type: TypeJSON},
	{Name: "ix", Path: "sizes[*]", Source: SourceOrdinal},
	{Name: "size", Path: "sizes[*].size"},
	{Name: "qty", Path: "sizes[*].qty", Type: TypeInt},
	{Name: "ean", Path: "sizes[*].ean"},
}}

func benchSetup(b *testing.B) (*Mapping, []byte) {
	event, err := os.ReadFile("testdata/bench/article.json")
	if err != nil {
		b.Fatal(err)
	}
	event = bytes.TrimSpace(event)
	m, err := Compile([]TableSpec{benchTable}, CSV{Header: true})
	if err != nil {
		b.Fatal(err)
	}
	// The daemon's default limits (conf: [limits]).
	return m.WithLimits(Limits{EventBytes: 8 << 20, Rows: 10000, OutputBytes: 16 << 20, FieldBytes: 1 << 20}), event
}

// reportEvents reports events per wall-clock second and per CPU-second of
// the process (user + system): on a shared machine the second is the
// per-core figure, since waiting for a core does not count.
func reportEvents(b *testing.B, cpuStart time.Duration, rows int) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu := cpuTime() - cpuStart; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
	if rows > 0 {
		b.ReportMetric(float64(rows)/float64(b.N), "rows/event")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFlatten: parse an event and append its rows (what the engine
// does when a session closes).
func BenchmarkFlatten(b *testing.B) {
	m, event := benchSetup(b)
	var p Parser
	var out []byte
	rows := 0
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		d, err := p.Parse(event)
		if err != nil {
			b.Fatal(err)
		}
		var n int
		out, n, err = m.AppendRows(out[:0], 0, d, Lineage{})
		if err != nil || n != 3 {
			b.Fatal(n, err)
		}
		rows += n
	}
	reportEvents(b, cpu, rows)
}

// BenchmarkFlattenValidated: parse, validate, append (what `materializer
// flatten` does per event).
func BenchmarkFlattenValidated(b *testing.B) {
	m, event := benchSetup(b)
	var p Parser
	var out []byte
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		d, err := p.Parse(event)
		if err == nil {
			err = m.Validate(d)
		}
		if err != nil {
			b.Fatal(err)
		}
		out, _, _ = m.AppendRows(out[:0], 0, d, Lineage{})
	}
	reportEvents(b, cpu, 0)
}

// BenchmarkParse: parse and index an event.
func BenchmarkParse(b *testing.B) {
	_, event := benchSetup(b)
	var p Parser
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := p.Parse(event); err != nil {
			b.Fatal(err)
		}
	}
	reportEvents(b, cpu, 0)
}

// BenchmarkValidate: validate a parsed event (at ingest).
func BenchmarkValidate(b *testing.B) {
	m, event := benchSetup(b)
	var p Parser
	d, err := p.Parse(event)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if err := m.Validate(d); err != nil {
			b.Fatal(err)
		}
	}
	reportEvents(b, cpu, 0)
}

// BenchmarkLookup: the engine's key extraction (3 paths without [*]).
func BenchmarkLookup(b *testing.B) {
	_, event := benchSetup(b)
	var p Parser
	d, err := p.Parse(event)
	if err != nil {
		b.Fatal(err)
	}
	paths := make([]Path, 3)
	for i, s := range []string{"article_id", "metadata.eid", "metadata.occurred_at"} {
		if paths[i], err = ParsePath(s); err != nil {
			b.Fatal(err)
		}
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		for _, path := range paths {
			buf = d.Lookup(path).AppendText(buf[:0])
		}
	}
}

// TestFlattenAllocs pins the steady state: no allocation per event.
func TestFlattenAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	event, err := os.ReadFile("testdata/bench/article.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile([]TableSpec{benchTable}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	var p Parser
	var out []byte
	allocs := testing.AllocsPerRun(100, func() {
		d, err := p.Parse(event)
		if err == nil {
			err = m.Validate(d)
		}
		if err != nil {
			t.Fatal(err)
		}
		out, _, _ = m.AppendRows(out[:0], 0, d, Lineage{})
	})
	if allocs != 0 {
		t.Errorf("%v allocations per event in steady state, want 0", allocs)
	}
}
