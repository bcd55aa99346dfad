package conf

import (
	"fmt"
	"regexp"
	"strings"

	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
)

// tableName is what every SQL dialect we emit DDL for accepts unquoted.
var tableName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// RejectedTable is the reserved table name of rejected-event files.
const RejectedTable = "_rejected"

var orderings = []string{OrderingNumber, OrderingString, OrderingTimestamp, OrderingArrival}

func (c *Config) validateEventTypes(ps *problems) {
	if len(c.EventTypes) == 0 {
		ps.add("event_types", "", "is required: configure at least one [[event_types]]")
	}
	seen := map[string]int{}
	for i := range c.EventTypes {
		et := &c.EventTypes[i]
		key := c.eventTypeKey(i)
		if prev, dup := seen[et.Name]; dup && et.Name != "" {
			ps.bad(key+".name", et.Name, "is the name of %s already", c.eventTypeKey(prev))
		}
		seen[et.Name] = i
		et.validate(ps, key, c.CSV)
	}
}

func (et *EventType) validate(ps *problems, key string, csv CSV) {
	switch {
	case et.Name == "":
		ps.missing(key + ".name")
	case !nakadi.ValidEventType(et.Name): // the consumer checks the names Nakadi sends the same way
		ps.bad(key+".name", et.Name, "is not a Nakadi event type name ([a-zA-Z][-0-9a-zA-Z_]*, dot-separated, at most 255 bytes)")
	}
	et.validateKeys(ps, key)
	et.validateWindows(ps, key)
	et.validateTables(ps, key, csv)
}

func (et *EventType) validateKeys(ps *problems, key string) {
	if len(et.PartitionKey) == 0 {
		ps.add(key+".partition_key", "", "is required: list at least one path")
	}
	for j, p := range et.PartitionKey {
		scalarPath(ps, fmt.Sprintf("%s.partition_key[%d]", key, j), p)
	}
	if et.Ordering == "" {
		ps.missing(key + ".ordering")
	} else {
		oneOf(ps, key+".ordering", et.Ordering, orderings)
	}
	switch {
	case et.Ordering == OrderingArrival && et.OrderingKey != "":
		ps.bad(key+".ordering_key", et.OrderingKey, `must be empty when ordering = "arrival" (Nakadi offset order)`)
	case et.Ordering != OrderingArrival && et.OrderingKey == "":
		ps.missing(key + ".ordering_key")
	case et.OrderingKey != "":
		scalarPath(ps, key+".ordering_key", et.OrderingKey)
	}
	scalarPath(ps, key+".eid_path", et.EIDPath)
	scalarPath(ps, key+".occurred_at_path", et.OccurredAtPath)
}

// scalarPath checks a path that must address one value: valid, no [*].
func scalarPath(ps *problems, key, path string) {
	p, err := flatten.ParsePath(path)
	switch {
	case path == "":
		ps.missing(key)
	case err != nil:
		ps.bad(key, path, "is not a valid path: %s", pathReason(err))
	case p.Explodes():
		ps.bad(key, path, "must address one value: [*] is not allowed here")
	}
}

// pathReason is ParsePath's reason without the repeated path.
func pathReason(err error) string {
	if pe, ok := err.(*flatten.PathError); ok {
		return fmt.Sprintf("%s at byte %d", pe.Reason, pe.Offset)
	}
	return err.Error()
}

func (et *EventType) validateWindows(ps *problems, key string) {
	gapOK := positive(ps, key+".session_gap", et.SessionGap)
	maxOK := positive(ps, key+".session_max", et.SessionMax)
	if gapOK && maxOK && et.SessionMax.d < et.SessionGap.d {
		ps.bad(key+".session_max", et.SessionMax.text, "must be >= session_gap (%s)", et.SessionGap.text)
	}
	if positive(ps, key+".key_retention", et.KeyRetention) && maxOK && et.KeyRetention.d < et.SessionMax.d {
		ps.bad(key+".key_retention", et.KeyRetention.text, "must be >= session_max (%s)", et.SessionMax.text)
	}
}

// validateTables checks table names here and everything else about tables
// and columns through flatten.Compile, the engine's own compiler.
func (et *EventType) validateTables(ps *problems, key string, csv CSV) {
	for t, tbl := range et.Tables {
		tkey := fmt.Sprintf("%s.tables[%d].name", key, t)
		switch {
		case tbl.Name == RejectedTable:
			ps.bad(tkey, tbl.Name, "is reserved for rejected-event files")
		case tbl.Name != "" && !tableName.MatchString(tbl.Name):
			ps.bad(tkey, tbl.Name, "is not a table name ([a-zA-Z_][a-zA-Z0-9_]*)")
		}
	}
	_, err := flatten.Compile(et.TableSpecs(), csv.Flatten())
	fps, _ := err.(flatten.Problems)
	for _, fp := range fps {
		if fp.Table < 0 && strings.HasPrefix(fp.Field, "csv.") {
			continue // the [csv] section is checked once, by CSV.validate
		}
		p := flattenProblem(key, fp)
		if !ps.list.covers(p.Key) {
			ps.list = append(ps.list, p)
		}
	}
}

// flattenProblem names a flatten.Problem by its config key.
func flattenProblem(key string, fp flatten.Problem) Problem {
	switch {
	case fp.Table < 0:
		key = fmt.Sprintf("%s.%s", key, fp.Field)
	case fp.Column < 0:
		key = fmt.Sprintf("%s.tables[%d].%s", key, fp.Table, fp.Field)
	default:
		key = fmt.Sprintf("%s.tables[%d].columns[%d].%s", key, fp.Table, fp.Column, fp.Field)
	}
	value := quote(fp.Value)
	if fp.Field == "required" || fp.Field == "tables" || fp.Field == "columns" {
		value = "" // not a string the user wrote
	}
	return Problem{Key: key, Value: value, Msg: fp.Msg}
}

// TableSpecs is the event type's tables in the form flatten.Compile takes.
func (et *EventType) TableSpecs() []flatten.TableSpec {
	specs := make([]flatten.TableSpec, len(et.Tables))
	for t, tbl := range et.Tables {
		cols := make([]flatten.ColumnSpec, len(tbl.Columns))
		for k, c := range tbl.Columns {
			cols[k] = flatten.ColumnSpec{
				Name: c.Name, Path: c.Path, Type: flatten.Type(c.Type),
				Required: c.Required, Source: flatten.Source(c.Source),
			}
		}
		specs[t] = flatten.TableSpec{Name: tbl.Name, Columns: cols}
	}
	return specs
}

// Flatten is the [csv] section in the form flatten takes. Call it on a
// validated config (the delimiter is then exactly one byte).
func (c CSV) Flatten() flatten.CSV {
	var d byte
	if len(c.Delimiter) == 1 {
		d = c.Delimiter[0]
	}
	return flatten.CSV{Delimiter: d, Header: c.Header, Null: c.Null}
}

// Flatten is the [limits] section in the form flatten takes (the rows and
// bytes limits of one event; max_rejected_raw_bytes is the engine's).
func (l Limits) Flatten() flatten.Limits {
	return flatten.Limits{
		EventBytes: int(l.MaxEventBytes.Bytes()), Rows: l.MaxRowsPerEvent,
		OutputBytes: int(l.MaxEventOutputBytes.Bytes()), FieldBytes: int(l.MaxFieldBytes.Bytes()),
	}
}
