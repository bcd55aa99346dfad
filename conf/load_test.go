package conf

import (
	"strings"
	"testing"
)

// loadBase edits testdata/base.toml into a valid config for `materializer
// load`: a DSN file, and an offset column in the arrival-ordered table.
func loadBase(kv ...string) map[string]string {
	m := e("load.dsn_file", `"/etc/materializer/pg.dsn"`,
		"event_types[0].tables[1].columns", `[{ name = "article_id", path = "article_id", type = "int" }, { name = "size", path = "sizes[*].size" }, { name = "version", path = "version", type = "int" }]`,
		"event_types[1].tables[0].columns", `[{ name = "order_number", path = "order_number" }, { name = "offset", source = "offset" }]`)
	for k, v := range e(kv...) {
		m[k] = v
	}
	return m
}

func TestLoadBaseIsValid(t *testing.T) {
	if ps := problemsOf(t, edited(t, loadBase()), ForLoad); ps != nil {
		t.Fatalf("%v", ps)
	}
}

// The columns `materializer load` needs, and the names of the tables it
// makes: each rule is one problem at one key, naming what is missing.
func TestLoadRules(t *testing.T) {
	for _, c := range []ruleCase{
		{"no dsn_file", loadBase("load.dsn_file", `""`),
			"load.dsn_file", "is required by `materializer load`"},
		{"no key column", loadBase("event_types[0].tables[1].columns", `[{ name = "article_id", path = "id", type = "int" }, { name = "version", path = "version", type = "int" }]`),
			"event_types[0].tables[1].columns", `"article_id" has no column: ` + "`materializer load`" + ` needs a column with the partition key path "article_id" in table "article_size"`},
		{"no ordering column", loadBase("event_types[0].tables[0].columns[1].path", `"rev"`),
			"event_types[0].tables[0].columns", `"version" has no column: ` + "`materializer load`" + ` needs a column with the ordering key path "version" in table "article"`},
		{"ordering column of another type", loadBase("event_types[0].tables[0].columns[1].type", `"bool"`),
			"event_types[0].tables[0].columns[1].type", `"bool" cannot hold the ordering key for ordering = "number"`},
		{"key columns of two types", loadBase("event_types[0].tables[1].columns", `[{ name = "article_id", path = "article_id" }, { name = "version", path = "version", type = "int" }]`),
			"event_types[0].tables[1].columns[0].type", `"string" differs from the type of the partition key path "article_id"`},
		{"arrival without offset column", loadBase("event_types[1].tables[0].columns", `[{ name = "order_number", path = "order_number" }]`),
			"event_types[1].tables[0].columns", `has no offset column: with ordering = "arrival"`},
		{"history name taken", loadBase("load.history", "true", "event_types[1].tables[0].name", `"article_history"`),
			"event_types[1].tables[0].name", `"article_history" makes the table "article_history" for ` + "`materializer load`, which is the table of event_types[0].tables[0].name already"},
		{"versions name taken", loadBase("event_types[1].tables[0].name", `"article_updated_versions"`),
			"event_types[1].tables[0].name", `"article_updated_versions" makes the table "article_updated_versions"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ps := problemsOf(t, edited(t, c.edits), ForLoad)
			if len(ps) != 1 || ps[0].Key != c.key || !strings.Contains(ps[0].String(), c.want) {
				t.Fatalf("problems %v\nwant one at %s containing %q", ps, c.key, c.want)
			}
		})
	}
}

// A bracketed path is the same path: ["article_id"] is article_id.
func TestLoadPathMatchIsCanonical(t *testing.T) {
	if ps := problemsOf(t, edited(t, loadBase("event_types[0].tables[1].columns", `[{ name = "article_id", path = "[\"article_id\"]", type = "int" }, { name = "version", path = "version", type = "int" }]`)), ForLoad); ps != nil {
		t.Fatalf("%v", ps)
	}
}

// `check` (mode run) validates [load] when the section names a DSN file.
func TestCheckValidatesLoadWhenPresent(t *testing.T) {
	ps := problemsOf(t, edited(t, e("load.dsn_file", `"/x"`)), ForRun)
	if len(ps) != 2 || !strings.Contains(ps.Error(), `"version" has no column`) || !strings.Contains(ps.Error(), `has no offset column`) {
		t.Fatalf("problems %v, want the child table's missing version and the arrival table's missing offset column", ps)
	}
}
