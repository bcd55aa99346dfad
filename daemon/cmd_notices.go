package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"materializer/pipeline"
	"materializer/pipeline/notify"
)

// cmdNotices is `materializer notices`: tail the delivery notices of
// docs/files-and-notices.md as JSON lines, one per notice, until interrupted. It reads
// the stream with an ordered consumer (notify.Tail), so it leaves nothing
// on the server. The nats CLI equivalent:
//
//	nats sub 'materializer.files.>' --stream MATERIALIZER_FILES --new --raw
func cmdNotices(args []string, io stdio) int {
	fs := newFlags("notices", io)
	path := fs.String("config", defaultConfigPath, "config `file`")
	eventType := fs.String("event-type", "", "only the notices of this event type `name` (default: all)")
	from := fs.String("from", "new", "where to `start`: new, all, last (newest per event type), an RFC 3339 time, or a duration such as 1h")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	cfg, ok := loadConfig(*path, clientMode, io.err)
	if !ok {
		return exitUsage
	}
	n := cfg.Notify
	if n.NATSURL == "" {
		fmt.Fprintf(io.err, "materializer notices: %s: notify.nats_url is empty: this daemon publishes no notices\n", *path)
		return exitUsage
	}
	filter := ""
	if *eventType != "" {
		filter = notify.Subject(n.SubjectPrefix, *eventType)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := notify.Tail(ctx, pipeline.NotifyOptions(n, newLogger("console", io.err).Level(zerolog.WarnLevel)), filter, *from, io.out)
	if err != nil {
		fmt.Fprintf(io.err, "materializer notices: %v\n", err)
		if errors.Is(err, notify.ErrConfig) {
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}
