package checkpoint

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"materializer/pipeline/engine"
	"materializer/pipeline/nakadi"
)

func TestCompareNamesEveryDifference(t *testing.T) {
	m := &Manifest{ID: "ck", EventTypes: []EventType{
		{Name: "a", Fingerprint: engine.Fingerprint([]string{"id"}, "version", "number"), Tables: []Table{
			{Name: "t1", Columns: []string{"id:int", "v:int"}}, {Name: "gone", Columns: []string{"x:string"}},
		}},
		{Name: "old", Fingerprint: engine.Fingerprint([]string{"k"}, "", "arrival")},
	}}
	if err := Compare(m, []EventType{m.EventTypes[0], m.EventTypes[1]}); err != nil {
		t.Fatalf("same config: %v", err)
	}
	cfg := []EventType{
		{Name: "a", Fingerprint: engine.Fingerprint([]string{"id", "shop"}, "version", "string"), Tables: []Table{
			{Name: "t1", Columns: []string{"id:int", "v:string"}}, {Name: "new", Columns: []string{"y:int"}},
		}},
		{Name: "added", Fingerprint: engine.Fingerprint([]string{"k"}, "", "arrival")},
	}
	err := Compare(m, cfg)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{
		`event type a: partition_key is "id" in the checkpoint, the config says "id,shop"`,
		`event type a: ordering is "number" in the checkpoint, the config says "string"`,
		`event type a: table t1 has columns [id:int v:int] in the checkpoint, the config says [id:int v:string]`,
		`event type a: table new is configured but not in the checkpoint`,
		`event type a: table gone is in the checkpoint but not configured`,
		`event type added is configured but not in the checkpoint`,
		`event type old is in the checkpoint but not configured`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "ordering_key") {
		t.Errorf("names an equal key:\n%v", err)
	}
}

func TestPlanReset(t *testing.T) {
	off := func(n int) string { return fmt.Sprintf("001-0001-%018d", n) }
	m := &Manifest{Cursors: []Cursor{
		{"et", "0", off(41)}, {"et", "1", off(9)}, {"et", "2", off(5)}, {"other", "0", off(1)},
	}}
	parts := []nakadi.PartitionOffsets{
		{Partition: "0", Oldest: off(0), Newest: off(99)},
		{Partition: "1", Oldest: off(10), Newest: off(99)}, // offset 9 = oldest-1: nothing lost
		{Partition: "2", Oldest: off(8), Newest: off(99)},  // 6 and 7 expired
		{Partition: "3", Oldest: off(0), Newest: "001-0001--1"},
	}
	plan := PlanReset(m, "et", parts, "end")
	want := []Cursor{{"et", "0", off(41)}, {"et", "1", off(9)}, {"et", "2", "BEGIN"}}
	if len(plan.Cursors) != 3 || plan.Cursors[0] != want[0] || plan.Cursors[1] != want[1] || plan.Cursors[2] != want[2] {
		t.Errorf("cursors %v, want %v", plan.Cursors, want)
	}
	if len(plan.Expired) != 1 || plan.Expired[0] != (Expired{"2", off(5), off(8)}) {
		t.Errorf("expired %+v", plan.Expired)
	}
	if len(plan.Untouched) != 1 || plan.Untouched[0] != "3" {
		t.Errorf("untouched %v", plan.Untouched)
	}
	if begin := PlanReset(m, "et", parts, "begin"); len(begin.Cursors) != 4 || begin.Cursors[3] != (Cursor{"et", "3", "BEGIN"}) {
		t.Errorf("read_from begin: %v", begin.Cursors)
	}
	if blind := PlanReset(m, "et", nil, "end"); len(blind.Cursors) != 3 {
		t.Errorf("without partitions: %v", blind.Cursors)
	}
}
