package conf

import (
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	a, err := Parse(edited(t, nil), ForRun)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(edited(t, e(
		"daemon.log_level", `"debug"`,
		"event_types[0].session_gap", `"3m"`,
		"event_types[1].tables[0].columns", `[{ name = "order_number", path = "order_number" }, { name = "x", path = "x" }]`,
	)), ForRun)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"daemon.log_level",
		"event_types[0].session_gap",
		"event_types[1].tables[0].columns",
		"event_types[1].tables[0].columns[1].name",
		"event_types[1].tables[0].columns[1].path",
		"event_types[1].tables[0].columns[1].required",
		"event_types[1].tables[0].columns[1].source",
		"event_types[1].tables[0].columns[1].type",
	}
	if got := Diff(a, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff = %v\nwant %v", got, want)
	}
	if got := Diff(a, a); len(got) != 0 {
		t.Fatalf("Diff(a, a) = %v", got)
	}
}
