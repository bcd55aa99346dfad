package main

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"materializer/internal/redact"
)

// newLogger returns the daemon's root logger writing to w in format
// ("json" for journald, "console" for humans). Console output has colours
// only when w is a terminal, so files and pipes get plain text. Durations
// are logged as Go duration strings (Stringer, never zerolog's Dur, which
// writes bare numbers). Its level is zerolog's global level (see
// setLogLevel), so that SIGHUP changes every component's logger.
func newLogger(format string, w io.Writer) zerolog.Logger {
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !isTerminal(w)}
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).With().Timestamp().Logger()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// setLogLevel applies a validated daemon.log_level process-wide.
func setLogLevel(level string) {
	l, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		l = zerolog.InfoLevel
	}
	zerolog.SetGlobalLevel(l)
}

// safeErr is err with the userinfo of every URL in its message masked
// (redact.Text), for log lines and the last line of a failed run: an error
// that quotes a URL must not print its credentials.
func safeErr(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(redact.Text(err.Error()))
}
