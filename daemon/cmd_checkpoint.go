package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"materializer/checkpoint"
	"materializer/conf"
	"materializer/internal/datadir"
	"materializer/pipeline"
)

// cmdCheckpoint is `materializer checkpoint list|create|restore`
// (docs/checkpoints.md): list and restore work with the daemon stopped and the data dir
// gone; create asks the running daemon.
func cmdCheckpoint(args []string, io stdio) int {
	subs := map[string]func([]string, stdio) int{
		"list": checkpointList, "create": checkpointCreate, "restore": checkpointRestore,
	}
	if len(args) > 0 {
		if run, ok := subs[args[0]]; ok {
			return run(args[1:], io)
		}
	}
	w, code := io.err, exitUsage
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		w, code = io.out, exitOK
	} else if len(args) > 0 {
		fmt.Fprintf(w, "materializer checkpoint: unknown subcommand %q\n", args[0])
	}
	fmt.Fprint(w, `usage: materializer checkpoint <subcommand> -config FILE [flags]

  list      local and remote checkpoints, newest first, with age, size and cursors
  create    take a checkpoint now (asks the running daemon's admin API)
  restore   -id ID|latest [-from URL] [-yes]: replace the data dir with a
            checkpoint and reset the Nakadi cursors to it (daemon stopped)

`+"`materializer checkpoint <subcommand> -h`"+` shows its flags.
`)
	return code
}

// subFlags is a flag set for `materializer checkpoint <sub>`.
func subFlags(sub, synopsis string, io stdio) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("checkpoint "+sub, flag.ContinueOnError)
	fs.SetOutput(io.err)
	fs.Usage = func() {
		fmt.Fprintf(io.err, "usage: materializer checkpoint %s -config FILE %s\n\nflags:\n", sub, synopsis)
		fs.PrintDefaults()
	}
	return fs, fs.String("config", defaultConfigPath, "config `file`")
}

// checkpointSource is where checkpoints are: DATA_DIR/checkpoints and the
// remote copy (checkpoint.url, or from when set).
func checkpointSource(cfg *conf.Config, from string) (checkpoint.Source, error) {
	src := checkpoint.Source{LocalDir: datadir.Checkpoints(cfg.Daemon.DataDir)}
	url := cfg.Checkpoint.URL
	if from != "" {
		url = from
	}
	if url == "" {
		return src, nil
	}
	store, err := pipeline.OpenCheckpointStore(cfg, url, zerolog.Nop())
	if err != nil {
		return src, err
	}
	src.Remote = checkpoint.NewRemote(store, checkpoint.RemoteOptions{})
	return src, nil
}

func checkpointList(args []string, io stdio) int {
	fs, path := subFlags("list", "[-from URL] [-json]", io)
	from := fs.String("from", "", "remote checkpoints `URL` (s3:// or file://) instead of checkpoint.url")
	asJSON := fs.Bool("json", false, "print JSON")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	cfg, ok := loadConfig(*path, conf.ForRun, io.err)
	if !ok {
		return exitUsage
	}
	src, err := checkpointSource(cfg, *from)
	if err != nil {
		fmt.Fprintf(io.err, "materializer checkpoint list: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	list, err := src.List(ctx)
	if err != nil {
		fmt.Fprintf(io.err, "materializer checkpoint list: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		if list == nil {
			list = []checkpoint.Info{}
		}
		enc := json.NewEncoder(io.out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(list)
		return exitOK
	}
	printCheckpoints(io.out, list, time.Now())
	return exitOK
}

// printCheckpoints writes the human listing: one line per checkpoint, its
// cursors below; invalid ones say why they cannot be restored.
func printCheckpoints(w io.Writer, list []checkpoint.Info, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no checkpoints")
		return
	}
	for _, c := range list {
		if c.Invalid != "" {
			fmt.Fprintf(w, "%-34s %-6s  NOT RESTORABLE: %s\n", c.ID, c.Where, c.Invalid)
			continue
		}
		fmt.Fprintf(w, "%-34s %-6s  %9s ago  %10s  %4d files  %s\n", c.ID, c.Where, age(now.Sub(c.Created)),
			byteSize(c.Size), c.Files, c.Location)
		for _, line := range cursorLines(c.Cursors) {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
}

// cursorLines renders cursors as one line per event type.
func cursorLines(cs []checkpoint.Cursor) []string {
	var out []string
	for i := 0; i < len(cs); {
		et := cs[i].EventType
		parts := []string{et}
		for ; i < len(cs) && cs[i].EventType == et; i++ {
			parts = append(parts, "p"+cs[i].Partition+"="+cs[i].Offset)
		}
		out = append(out, strings.Join(parts, "  "))
	}
	return out
}

// age renders a duration the way an operator reads it: 45s, 12m, 3h05m, 2d04h.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func checkpointCreate(args []string, io stdio) int {
	fs, path := subFlags("create", "[-timeout 10m]", io)
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the checkpoint (and its remote copy)")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	cfg, ok := loadConfig(*path, conf.ForRun, io.err)
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var res checkpoint.Result
	if err := adminPost(ctx, cfg, "/v1/checkpoints", &res); err != nil {
		fmt.Fprintf(io.err, "materializer checkpoint create: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(io.out, "checkpoint %s taken in %s (ingestion paused %s): %s in %d files, %s\n",
		res.ID, res.Took.Round(time.Millisecond), res.Pause.Round(10*time.Microsecond), byteSize(res.Size), res.Files, res.Location)
	if res.Upload != nil {
		fmt.Fprintf(io.out, "remote copy: %d of %d objects uploaded (%s), %d already there\n",
			res.Upload.Uploaded, res.Upload.Files, byteSize(res.Upload.Bytes), res.Upload.Skipped)
	}
	if res.RemoteError != "" {
		fmt.Fprintf(io.err, "materializer checkpoint create: the local checkpoint is complete, its remote copy failed: %s\n", res.RemoteError)
		return exitFailure
	}
	return exitOK
}
