package main

import (
	"errors"
	"fmt"
	"io"

	"materializer/conf"
)

// cmdCheck is `materializer check`: load and validate a config, print a
// one-line summary (exit 0) or every problem (exit 2).
func cmdCheck(args []string, io stdio) int {
	fs := newFlags("check", io)
	path := fs.String("config", defaultConfigPath, "config `file`")
	demo := fs.Bool("demo", false, "validate as `materializer demo` would (nakadi.url may be empty)")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	mode := conf.ForRun
	if *demo {
		mode = conf.ForDemo
	}
	cfg, ok := loadConfig(*path, mode, io.err)
	if !ok {
		return exitUsage
	}
	fmt.Fprintln(io.out, summary(cfg))
	fmt.Fprintln(io.out, cfg.Daemon.MemoryBudget())
	return exitOK
}

// loadConfig loads and validates the file, printing a read error as one
// line or every problem one per line to w.
func loadConfig(path string, mode conf.Mode, w io.Writer) (*conf.Config, bool) {
	cfg, err := conf.Load(path, mode)
	if err != nil {
		printLoadError(w, path, err)
		return nil, false
	}
	return cfg, true
}

// printLoadError prints a config's read error as one line, or every
// problem one per line.
func printLoadError(w io.Writer, path string, err error) {
	var ps conf.Problems
	if !errors.As(err, &ps) {
		fmt.Fprintf(w, "materializer: %v\n", err)
		return
	}
	fmt.Fprintf(w, "materializer: %s: %s:\n", path, plural(len(ps), "problem"))
	for _, p := range ps {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

// summary is check's one line about a good config.
func summary(cfg *conf.Config) string {
	tables := 0
	for _, et := range cfg.EventTypes {
		tables += len(et.Tables)
	}
	notices := "on"
	if cfg.Notify.NATSURL == "" {
		notices = "off"
	}
	return fmt.Sprintf("conf ok: %s, %s, storage %s, notices %s",
		plural(len(cfg.EventTypes), "event type"), plural(tables, "table"), cfg.Storage.URL, notices)
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
