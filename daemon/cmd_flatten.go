package main

import (
	"bufio"
	"fmt"
	"strings"

	"materializer/conf"
	"materializer/pipeline/flatten"
)

// cmdFlatten is `materializer flatten`: NDJSON events on stdin → the CSV the
// main file of one table would hold, without compaction, on stdout
// (docs/mapping.md). Rejected events — also those over the [limits] — are
// reported on stderr as `line N: reason`. Exit 1 when any event was
// rejected, 2 on usage or config errors.
func cmdFlatten(args []string, io stdio) int {
	fs := newFlags("flatten", io)
	path := fs.String("config", defaultConfigPath, "config `file`")
	eventType := fs.String("event-type", "", "configured event type `name` (required)")
	table := fs.String("table", "", "table `name` (default: the event type's first table)")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	if *eventType == "" {
		fmt.Fprintln(io.err, "materializer flatten: -event-type is required")
		fs.Usage()
		return exitUsage
	}
	cfg, ok := loadConfig(*path, clientMode, io.err)
	if !ok {
		return exitUsage
	}
	et, err := findEventType(cfg, *eventType)
	if err != nil {
		fmt.Fprintf(io.err, "materializer flatten: %v\n", err)
		return exitUsage
	}
	m, err := flatten.Compile(et.TableSpecs(), cfg.CSV.Flatten())
	if err != nil { // validated by conf; kept for safety
		fmt.Fprintf(io.err, "materializer flatten: event type %s: %v\n", et.Name, err)
		return exitUsage
	}
	m = m.WithLimits(cfg.Limits.Flatten()) // the daemon's per-event limits

	ti := 0
	if *table != "" {
		if ti = m.TableIndex(*table); ti < 0 {
			fmt.Fprintf(io.err, "materializer flatten: event type %s has no table %q (tables: %s)\n",
				et.Name, *table, strings.Join(tableNames(et), ", "))
			return exitUsage
		}
	}
	return flattenStream(io, m, ti, et.Name)
}

// flattenStream runs flatten.WriteNDJSON with buffered output and maps
// the outcome to an exit code.
func flattenStream(io stdio, m *flatten.Mapping, ti int, eventType string) int {
	out := bufio.NewWriterSize(io.out, 64<<10)
	lineage := func(int) flatten.Lineage { return flatten.Lineage{EventType: eventType} }
	rejected, err := flatten.WriteNDJSON(io.in, out, io.err, m, ti, lineage)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	switch {
	case err != nil:
		fmt.Fprintf(io.err, "materializer flatten: %v\n", err)
		return exitFailure
	case rejected > 0:
		fmt.Fprintf(io.err, "materializer flatten: %s rejected\n", plural(rejected, "event"))
		return exitFailure
	}
	return exitOK
}

// clientMode is how the commands that never talk to Nakadi (flatten, ddl,
// status, notices) validate a config: as run does, except that nakadi.url
// may be empty, so that conf/demo.toml works with them too.
const clientMode = conf.ForDemo

// findEventType returns the configured event type called name.
func findEventType(cfg *conf.Config, name string) (*conf.EventType, error) {
	var names []string
	for i := range cfg.EventTypes {
		if cfg.EventTypes[i].Name == name {
			return &cfg.EventTypes[i], nil
		}
		names = append(names, cfg.EventTypes[i].Name)
	}
	return nil, fmt.Errorf("no event type %q in the config (configured: %s)", name, strings.Join(names, ", "))
}

func tableNames(et *conf.EventType) []string {
	names := make([]string, len(et.Tables))
	for i, t := range et.Tables {
		names[i] = t.Name
	}
	return names
}
