package main

import (
	"bufio"
	"fmt"

	"materializer/pipeline/flatten"
)

// cmdDDL is `materializer ddl`: CREATE TABLE statements for every
// configured table in a warehouse dialect (docs/files-and-notices.md): per table `{table}`
// (main) and `{table}_correction`, per event type `{event_type}_rejected`.
func cmdDDL(args []string, io stdio) int {
	fs := newFlags("ddl", io)
	path := fs.String("config", defaultConfigPath, "config `file`")
	dialect := fs.String("dialect", flatten.DialectPostgres, "SQL `dialect`: postgres, redshift or oracle")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	switch *dialect {
	case flatten.DialectPostgres, flatten.DialectRedshift, flatten.DialectOracle:
	default:
		fmt.Fprintf(io.err, "materializer ddl: unknown -dialect %q: want postgres, redshift or oracle\n", *dialect)
		return exitUsage
	}
	cfg, ok := loadConfig(*path, clientMode, io.err)
	if !ok {
		return exitUsage
	}
	out := bufio.NewWriter(io.out)
	for i := range cfg.EventTypes {
		et := &cfg.EventTypes[i]
		ddl, err := flatten.DDL(*dialect, et.Name, et.TableSpecs())
		if err != nil {
			fmt.Fprintf(io.err, "materializer ddl: event type %s: %v\n", et.Name, err)
			return exitUsage
		}
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "-- event type %s\n%s", et.Name, ddl)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(io.err, "materializer ddl: %v\n", err)
		return exitFailure
	}
	return exitOK
}
