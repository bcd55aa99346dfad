package flatten

import (
	"errors"
	"strings"
	"testing"
)

func col(name, path string, typ Type) ColumnSpec {
	return ColumnSpec{Name: name, Path: path, Type: typ}
}

func TestCompileOK(t *testing.T) {
	m, err := Compile([]TableSpec{
		{Name: "article", Columns: []ColumnSpec{
			col("article_id", "article_id", TypeInt),
			col("brand", "brand", ""),
			{Name: "p", Source: SourcePartition},
			{Name: "o", Source: SourceOffset, Type: TypeString},
			{Name: "et", Source: SourceEventType},
		}},
		{Name: "order_item", Columns: []ColumnSpec{
			col("order_no", "orders[*].no", TypeInt),
			{Name: "order_ix", Source: SourceOrdinal, Path: "orders[*]"},
			col("sku", "orders[*].items[*].sku", ""),
			{Name: "item_ix", Source: SourceOrdinal, Path: "orders[*].items[*]"},
			col("first_tag", "orders[*].tags[0]", ""),
			col("id", "id", TypeInt),
		}},
	}, CSV{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Header(1)); got != "order_no,order_ix,sku,item_ix,first_tag,id\n" {
		t.Errorf("header = %q", got)
	}
	info := m.Tables()
	if len(info) != 2 || info[1].Columns[1] != (ColumnInfo{"order_ix", TypeInt}) || info[0].Columns[1].Type != TypeString {
		t.Errorf("Tables() = %+v", info)
	}
	if lv := m.tables[1].levels; len(lv) != 2 || (Path{lv[0]}).String() != "orders" || (Path{lv[1]}).String() != "items" {
		t.Errorf("levels = %v", lv)
	}
	if m.TableIndex("order_item") != 1 || m.TableIndex("nope") != -1 {
		t.Error("TableIndex")
	}
	if m.CSV().Delimiter != ',' {
		t.Error("zero delimiter is not ','")
	}
}

// Every kind of problem is reported, all at once, with its position.
func TestCompileProblems(t *testing.T) {
	_, err := Compile([]TableSpec{
		{Name: "t", Columns: []ColumnSpec{
			col("a", "sizes[*.qty", ""),                       // 0 bad path
			col("b", "b", "float"),                            // 1 unknown type
			{Name: "c", Path: "c", Source: "kafka"},           // 2 unknown source
			col("A", "x", ""),                                 // 3 duplicate of nothing yet: "a" is col 0
			col("d", "a[*].x", ""),                            // 4 sets the chain
			col("e", "b[*].y", ""),                            // 5 leaves the chain
			{Name: "f", Source: SourceOrdinal, Path: "a"},     // 6 ordinal without [*]
			{Name: "g", Source: SourceOrdinal, Path: "c[*]"},  // 7 ordinal off the chain
			{Name: "h", Source: SourcePartition, Path: "x"},   // 8 lineage with a path
			{Name: "i", Source: SourceOffset, Required: true}, // 9 required lineage
			{Name: "j", Source: SourceEventType, Type: TypeInt},
			col("", "k", ""), // 11 empty name
			col("l", "", ""), // 12 empty path
			col("m\n", "m", ""),
		}},
		{Name: "empty"},
		{Name: "t", Columns: []ColumnSpec{col("x", "x", "")}},
	}, CSV{Delimiter: '"', Null: "a\nb"})
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	want := []string{
		`csv.delimiter: "\"" cannot be a delimiter`,
		`csv.null: "a\nb" cannot be the null marker`,
		`tables[0].columns[0].path: "sizes[*.qty" is not a valid path: expected ']' at byte 7`,
		`tables[0].columns[1].type: "float" is not a type`,
		`tables[0].columns[2].source: "kafka" is not a source`,
		`tables[0].columns[3].name: "A" duplicates column 0 ("a")`,
		`tables[0].columns[5].path: "b[*].y" is not on the array chain a[*] of column "d"`,
		`tables[0].columns[6].path: "a" must end in [*] for an ordinal column`,
		`tables[0].columns[7].path: "c[*]" is not on the array chain a[*] of column "d"`,
		`tables[0].columns[8].path: "x" must be empty for source "partition"`,
		`tables[0].columns[9].required: "true" is not allowed for source "offset"`,
		`tables[0].columns[10].type: "int" is not allowed for source "event_type": its type is string`,
		`tables[0].columns[11].name: "" is empty`,
		`tables[0].columns[12].path: "" is not a valid path: a path is required`,
		`tables[0].columns[13].name: "m\n" holds a control character`,
		`tables[1].columns: "empty" has no columns`,
		`tables[2].name: "t" is the name of table 0 already`,
	}
	if len(ps) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(ps), len(want), strings.ReplaceAll(ps.Error(), "; ", "\n"))
	}
	for i := 0; i < len(ps) && i < len(want); i++ {
		if !strings.HasPrefix(ps[i].Error(), want[i]) {
			t.Errorf("problem %d = %s\nwant prefix %s", i, ps[i].Error(), want[i])
		}
	}
	if ps[5].Table != 0 || ps[5].Column != 3 || ps[5].Field != "name" || ps[5].Value != "A" {
		t.Errorf("problem fields: %+v", ps[5])
	}
}

func TestCompileNoTables(t *testing.T) {
	_, err := Compile(nil, CSV{})
	if err == nil || !strings.Contains(err.Error(), "no tables") {
		t.Errorf("err = %v", err)
	}
}

// The chain rule accepts o[*].a[*] with o[*].x in any order, and names the
// column that leaves the chain.
func TestCompileChain(t *testing.T) {
	ok := [][]string{
		{"o[*].a[*]", "o[*].x"},
		{"o[*].x", "o[*].a[*].y", "o[*]", "z"},
		{"o[0].a[*]", "o[0].a[*].b", "o[1]"},
		{"a[*][*]", "a[*]"},
	}
	for _, paths := range ok {
		if _, err := Compile([]TableSpec{tableOf(paths...)}, CSV{}); err != nil {
			t.Errorf("%v: %v", paths, err)
		}
	}
	bad := [][]string{
		{"a[*]", "b[*]"},
		{"o[0].a[*]", "o[1].a[*]"},
		{"o[*].a[*]", "o[*].b[*]"},
		{"x", "a[*].b[*]", "a[*].c[*].d"},
	}
	for _, paths := range bad {
		_, err := Compile([]TableSpec{tableOf(paths...)}, CSV{})
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Column != len(paths)-1 {
			t.Errorf("%v: %v", paths, err)
		}
	}
}

func tableOf(paths ...string) TableSpec {
	ts := TableSpec{Name: "t"}
	for i, p := range paths {
		ts.Columns = append(ts.Columns, col(string(rune('a'+i)), p, ""))
	}
	return ts
}
