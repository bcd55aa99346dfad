package main

import (
	"context"
	"fmt"
	"time"

	"materializer/conf"
	"materializer/pipeline"
)

// cmdDrain is `materializer drain` (docs/cli.md#drain): the running daemon
// hands its partitions over to the other members of the fleet (stops
// reading, closes every session, delivers every file, commits) and stays
// idle but alive, not ready, until `materializer drain -undo` or a restart.
func cmdDrain(args []string, io stdio) int {
	fs := newFlags("drain", io)
	path := fs.String("config", defaultConfigPath, "config `file`")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the drain (it stops where it is when this runs out)")
	undo := fs.Bool("undo", false, "undo a drain: consume again")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	cfg, ok := loadConfig(*path, conf.ForRun, io.err)
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *undo {
		var st drainState
		if err := adminPost(ctx, cfg, "/v1/undrain", &st); err != nil {
			fmt.Fprintf(io.err, "materializer drain -undo: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(io.out, "undrained: the daemon consumes again")
		return exitOK
	}
	var res pipeline.HandoverResult
	if err := adminPost(ctx, cfg, "/v1/drain", &res); err != nil {
		fmt.Fprintf(io.err, "materializer drain: %v\n", err)
		fmt.Fprintln(io.err, "materializer drain: the daemon has stopped reading; `materializer drain` again finishes the drain, `materializer drain -undo` undoes it")
		return exitFailure
	}
	var bytes int64
	for _, f := range res.Files {
		bytes += f.Bytes
	}
	fmt.Fprintf(io.out, "drained in %s: %s delivered (%s); the daemon holds nothing and reads nothing until `materializer drain -undo` or a restart\n",
		res.Took, plural(len(res.Files), "file"), byteSize(bytes))
	if res.Resent > 0 {
		fmt.Fprintf(io.out, "%s held back as redelivered were not committed: Nakadi re-sends them to the partitions' next owners\n", plural(res.Resent, "event"))
	}
	return exitOK
}
