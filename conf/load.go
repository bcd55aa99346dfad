package conf

import (
	"fmt"
	"strings"

	"materializer/pipeline/flatten"
)

// Names of the loader's own tables in load.schema (docs/loader.md).
const (
	LoadedFilesTable = "materializer_loaded_files"
	FailedFilesTable = "materializer_failed_files"
)

// validateLoad checks [load] and what `materializer load` needs of the
// tables: every table has a column for each partition key path and one
// for the ordering key, and every table the loader makes has a name of its
// own that PostgreSQL can hold.
func (c *Config) validateLoad(ps *problems) {
	c.Load.validate(ps)
	names := map[string]string{LoadedFilesTable: "the loader's own table", FailedFilesTable: "the loader's own table"}
	for i := range c.EventTypes {
		et := &c.EventTypes[i]
		key := c.eventTypeKey(i)
		keyTypes := map[string]string{}
		for j := range et.Tables {
			tkey := fmt.Sprintf("%s.tables[%d]", key, j)
			et.checkLoadColumns(ps, tkey, &et.Tables[j], keyTypes)
			c.claimLoadName(ps, names, tkey+".name", et.Tables[j].Name)
			if c.Load.History {
				c.claimLoadName(ps, names, tkey+".name", et.Tables[j].Name+"_history")
			}
		}
		if et.Name != "" {
			c.claimLoadName(ps, names, key+".name", flatten.RejectedTableName(et.Name))
			c.claimLoadName(ps, names, key+".name", VersionsTable(et.Name))
		}
	}
}

// VersionsTable is the loader's table of the winning version per key of an
// event type: `{event_type}_versions` with '.' → '_'.
func VersionsTable(eventType string) string {
	return strings.ReplaceAll(eventType, ".", "_") + "_versions"
}

// claimLoadName records a table name the loader makes, reporting a name
// taken twice or too long for PostgreSQL.
func (c *Config) claimLoadName(ps *problems, names map[string]string, key, name string) {
	if name == "" || name == RejectedTable {
		return
	}
	if len(name) > 63 {
		ps.bad(key, name, "makes the table %q for `materializer load`, longer than PostgreSQL's 63 bytes", name)
		return
	}
	if prev, taken := names[name]; taken {
		ps.bad(key, name, "makes the table %q for `materializer load`, which is %s already", name, prev)
		return
	}
	names[name] = "the table of " + key
}

// orderingTypes are the column types whose values compare as each ordering.
var orderingTypes = map[string][]string{
	OrderingNumber:    {"int", "decimal", "string"},
	OrderingString:    {"string"},
	OrderingTimestamp: {"timestamp", "string"},
}

// checkLoadColumns checks one table for the key and ordering columns;
// keyTypes remembers the type of each key path's column across tables.
func (et *EventType) checkLoadColumns(ps *problems, key string, t *Table, keyTypes map[string]string) {
	for _, p := range et.PartitionKey {
		want := canonicalPath(p)
		i := t.columnAt(want)
		switch {
		case want == "":
		case i < 0:
			ps.bad(key+".columns", p, "has no column: `materializer load` needs a column with the partition key path %q in table %q", p, t.Name)
		case keyTypes[want] == "":
			keyTypes[want] = columnType(t.Columns[i])
		case keyTypes[want] != columnType(t.Columns[i]):
			ps.bad(fmt.Sprintf("%s.columns[%d].type", key, i), columnType(t.Columns[i]),
				"differs from the type of the partition key path %q in the event type's other tables (%q): `materializer load` joins tables on it", p, keyTypes[want])
		}
	}
	et.checkOrderingColumn(ps, key, t)
}

func (et *EventType) checkOrderingColumn(ps *problems, key string, t *Table) {
	if et.Ordering == OrderingArrival {
		for _, c := range t.Columns {
			if c.Source == string(flatten.SourceOffset) {
				return
			}
		}
		ps.add(key+".columns", "", "has no offset column: with ordering = \"arrival\" `materializer load` orders versions by a column with source = \"offset\" in table %q", t.Name)
		return
	}
	want := canonicalPath(et.OrderingKey)
	i := t.columnAt(want)
	switch {
	case want == "" || orderingTypes[et.Ordering] == nil:
	case i < 0:
		ps.bad(key+".columns", et.OrderingKey, "has no column: `materializer load` needs a column with the ordering key path %q in table %q", et.OrderingKey, t.Name)
	case !contains(orderingTypes[et.Ordering], columnType(t.Columns[i])):
		ps.bad(fmt.Sprintf("%s.columns[%d].type", key, i), columnType(t.Columns[i]),
			"cannot hold the ordering key for ordering = %q (one of %s)", et.Ordering, strings.Join(orderingTypes[et.Ordering], ", "))
	}
}

// columnAt is the index of the first event column whose path is path
// (canonical), or -1.
func (t *Table) columnAt(path string) int {
	for i, c := range t.Columns {
		if c.Source == "" && path != "" && canonicalPath(c.Path) == path {
			return i
		}
	}
	return -1
}

// canonicalPath is a path in canonical form ("" when it does not parse),
// so that `a.b` and `["a"].b` match.
func canonicalPath(s string) string {
	p, err := flatten.ParsePath(s)
	if err != nil || s == "" {
		return ""
	}
	return p.String()
}

func columnType(c Column) string {
	if c.Type == "" {
		return "string"
	}
	return c.Type
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
