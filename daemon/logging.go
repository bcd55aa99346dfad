package main

import (
	"io"
	"time"

	"github.com/rs/zerolog"
)

// newLogger returns the daemon's root logger writing to w in format
// ("json" for journald, "console" for humans). Its level is zerolog's global
// level (see setLogLevel), so that SIGHUP changes every component's logger.
func newLogger(format string, w io.Writer) zerolog.Logger {
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).With().Timestamp().Logger()
}

// setLogLevel applies a validated daemon.log_level process-wide.
func setLogLevel(level string) {
	l, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		l = zerolog.InfoLevel
	}
	zerolog.SetGlobalLevel(l)
}
