// Command materializer consumes Nakadi event types, flattens and compacts
// them into CSV files, delivers the files to S3 and announces them over NATS
// (docs/design.md). This package is the binary: subcommand dispatch, the wiring
// of `run`, signals, the admin HTTP API and systemd notification.
//
// Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad config.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad usage or bad config

	defaultConfigPath = "/etc/materializer/materializer.toml"
)

// stdio is what a command reads and writes; tests pass buffers.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one subcommand; each lives in its own cmd_<name>.go.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string
	run     func(args []string, io stdio) int
}

// commands in the order `materializer -h` lists them (docs/cli.md). It is
// filled by init because the commands' flag usage refers back to it.
var commands []command

func init() {
	commands = []command{
		{"run", "-config FILE", "run the daemon (systemd ExecStart)", cmdRun},
		{"check", "-config FILE [-demo]", "validate a config; print every problem; exit 0 or 2", cmdCheck},
		{"flatten", "-config FILE -event-type NAME [-table NAME]", "NDJSON on stdin -> CSV on stdout, no compaction", cmdFlatten},
		{"ddl", "-config FILE [-dialect postgres|redshift|oracle]", "print CREATE TABLE statements for the configured tables", cmdDDL},
		{"checkpoint", "list|create|restore -config FILE [-id ID|latest] [-yes]", "list, take or restore checkpoints", cmdCheckpoint},
		{"status", "-config FILE", "human view of GET /v1/status", cmdStatus},
		{"drain", "-config FILE [-timeout 10m] [-undo]", "hand this member's work to the fleet and stay idle (or -undo)", cmdDrain},
		{"notices", "-config FILE", "tail delivery notices as JSON lines", cmdNotices},
		{"demo", "", "everything embedded, no external service needed", cmdDemo},
		{"load", "-config FILE [-replay ID]", "DWH loader: notices -> PostgreSQL tables, exactly once", cmdLoad},
		{"version", "", "print the version", cmdVersion},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}

// dispatch runs the subcommand named by args[0] and returns the exit code.
func dispatch(args []string, io stdio) int {
	if len(args) == 0 {
		usage(io.err)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(io.out)
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], io)
		}
	}
	fmt.Fprintf(io.err, "materializer: unknown command %q\n\n", args[0])
	usage(io.err)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: materializer <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "`materializer <command> -h` shows the flags of a command.")
}

// newFlags returns a flag set for a subcommand whose usage names the command.
func newFlags(name string, io stdio) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	fs.Usage = func() {
		for _, c := range commands {
			if c.name == name {
				fmt.Fprintf(io.err, "usage: materializer %s %s\n\n%s.\n", name, c.args, c.summary)
			}
		}
		if hasFlags(fs) {
			fmt.Fprintln(io.err, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args; when it returns done, the command must exit with
// code (0 for -h, 2 for a bad flag or a stray argument).
func parseFlags(fs *flag.FlagSet, args []string) (done bool, code int) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return true, exitOK
		}
		return true, exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "materializer %s: unexpected argument %q\n", fs.Name(), strings.Join(fs.Args(), " "))
		fs.Usage()
		return true, exitUsage
	}
	return false, exitOK
}
