package main

import (
	"fmt"
	"os"
	"time"

	"materializer/conf"
)

// cmdRun is `materializer run`: the daemon. A bad config exits 2 before
// anything starts; a failure after that exits 1; a clean stop exits 0.
func cmdRun(args []string, io stdio) int {
	fs := newFlags("run", io)
	path := fs.String("config", defaultConfigPath, "config `file`")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	signals, unsubscribe := serviceSignals()
	defer unsubscribe()

	cfg, ok := loadConfig(*path, conf.ForRun, io.err)
	if !ok {
		return exitUsage
	}
	err := runDaemon(runOptions{
		ConfigPath: *path, Config: cfg, Stderr: io.err,
		Getenv: os.Getenv, Signals: signals, Now: time.Now,
	})
	if err != nil {
		fmt.Fprintf(io.err, "materializer: run: %v\n", safeErr(err))
		return exitFailure
	}
	return exitOK
}
