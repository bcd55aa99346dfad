package flatten

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func ndjsonMapping(t *testing.T, o CSV) *Mapping {
	t.Helper()
	m, err := Compile([]TableSpec{
		{Name: "a", Columns: []ColumnSpec{{Name: "id", Path: "id", Type: TypeInt}, {Name: "line", Source: SourceOffset}}},
		{Name: "b", Columns: []ColumnSpec{{Name: "x", Path: "xs[*]", Type: TypeInt}}},
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Lines split at any read boundary, CRLF ends, a last line without "\n",
// blank lines, lines longer than the read buffer; rejected events of any
// table are reported for every table's output.
func TestWriteNDJSON(t *testing.T) {
	long := `{"id":7,"pad":"` + strings.Repeat("x", 200000) + `"}`
	input := "{\"id\":1}\r\n\n  \t\r\n{\"id\":2,\"xs\":[1,\"no\"]}\n" + long + "\nnot json\n{\"id\":3}"
	lin := func(line int) Lineage { return Lineage{Offset: strings.Repeat("L", line)} }
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(input),
		"one-byte": iotest.OneByteReader(strings.NewReader(input)),
		"half":     iotest.HalfReader(strings.NewReader(input)),
	} {
		var out, errOut bytes.Buffer
		n, err := WriteNDJSON(r, &out, &errOut, ndjsonMapping(t, CSV{Header: true}), 0, lin)
		if err != nil || n != 2 {
			t.Errorf("%s: %d rejected, %v", name, n, err)
		}
		if want := "id,line\n1,L\n7,LLLLL\n3,LLLLLLL\n"; out.String() != want {
			t.Errorf("%s: stdout %q, want %q", name, out.String(), want)
		}
		want := "line 4: table b column x: \"no\" is not an int\nline 6: invalid JSON: unexpected character 'n' looking for a value at byte 0\n"
		if errOut.String() != want {
			t.Errorf("%s: stderr %q, want %q", name, errOut.String(), want)
		}
	}
}

func TestWriteNDJSONEmpty(t *testing.T) {
	var out, errOut bytes.Buffer
	n, err := WriteNDJSON(strings.NewReader(""), &out, &errOut, ndjsonMapping(t, CSV{Header: true}), 1, nil)
	if err != nil || n != 0 || out.String() != "x\n" || errOut.Len() != 0 {
		t.Errorf("empty input: %d %v %q %q", n, err, out.String(), errOut.String())
	}
	out.Reset()
	_, _ = WriteNDJSON(strings.NewReader(`{"id":1}`), &out, &errOut, ndjsonMapping(t, CSV{}), 0, nil)
	if out.String() != "1,\n" {
		t.Errorf("header = false, no lineage: %q", out.String())
	}
}

var errBroken = errors.New("broken")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestWriteNDJSONErrors(t *testing.T) {
	m := ndjsonMapping(t, CSV{Header: true})
	var out, errOut bytes.Buffer
	_, err := WriteNDJSON(iotest.ErrReader(errBroken), &out, &errOut, m, 0, nil)
	if !errors.Is(err, errBroken) {
		t.Errorf("read error: %v", err)
	}
	if _, err := WriteNDJSON(strings.NewReader("{}\n"), failWriter{}, &errOut, m, 0, nil); !errors.Is(err, errBroken) {
		t.Errorf("stdout error: %v", err)
	}
	if _, err := WriteNDJSON(strings.NewReader("x\n"), &out, failWriter{}, m, 0, nil); !errors.Is(err, errBroken) {
		t.Errorf("stderr error: %v", err)
	}
	// A read error after some lines: those lines are flattened, the error
	// is returned, the partial last line is not.
	r := io.MultiReader(strings.NewReader("{\"id\":1}\n{\"id\":"), iotest.ErrReader(errBroken))
	out.Reset()
	if _, err := WriteNDJSON(r, &out, &errOut, m, 0, nil); !errors.Is(err, errBroken) || out.String() != "id,line\n1,\n" {
		t.Errorf("late read error: %v, %q", err, out.String())
	}
}
