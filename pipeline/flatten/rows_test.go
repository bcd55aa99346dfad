package flatten

import (
	"errors"
	"testing"
)

func TestRejectError(t *testing.T) {
	m, err := Compile([]TableSpec{
		{Name: "article", Columns: []ColumnSpec{{Name: "id", Path: "id", Type: TypeInt}}},
		{Name: "size", Columns: []ColumnSpec{{Name: "qty", Path: "sizes[*].qty", Type: TypeInt}}},
	}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	d := mustParse(t, `{"id":1,"sizes":[{"qty":1},{"qty":1.5}]}`)
	var re *RejectError
	if err := m.Validate(d); !errors.As(err, &re) || re.Table != "size" || re.Column != "qty" || re.Reason != "1.5 is not an int" {
		t.Fatalf("Validate = %#v", err)
	}
	if want := "table size column qty: 1.5 is not an int"; re.Error() != want {
		t.Errorf("Error() = %q, want %q", re.Error(), want)
	}
	// AppendRows leaves dst as it was on rejection and appends otherwise.
	dst := []byte("kept\n")
	out, n, err := m.AppendRows(dst, 1, d, Lineage{})
	if err == nil || n != 0 || string(out) != "kept\n" {
		t.Errorf("rejected AppendRows: %q %d %v", out, n, err)
	}
	out, n, err = m.AppendRows(dst, 0, d, Lineage{})
	if err != nil || n != 1 || string(out) != "kept\n1\n" {
		t.Errorf("AppendRows: %q %d %v", out, n, err)
	}
}

// A Mapping is shared by goroutines, each with its own Parser (run with
// -race).
func TestMappingConcurrent(t *testing.T) {
	m, err := Compile([]TableSpec{benchTable}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	event := []byte(`{"article_id":1,"sizes":[{"size":"S","qty":1},{"size":"M","qty":2}],"attributes":{"a":1}}`)
	want := ""
	done := make(chan string)
	for range 4 {
		go func() {
			var p Parser
			var out []byte
			for range 100 {
				d, err := p.Parse(event)
				if err == nil {
					err = m.Validate(d)
				}
				if err != nil {
					done <- err.Error()
					return
				}
				out, _, _ = m.AppendRows(out[:0], 0, d, Lineage{})
			}
			done <- string(out)
		}()
	}
	for i := range 4 {
		got := <-done
		if i == 0 {
			want = got
		}
		if got != want || want == "" {
			t.Errorf("goroutine result %q, want %q", got, want)
		}
	}
}
