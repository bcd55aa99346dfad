// Package load is the DWH loader behind `materializer load`
// (docs/loader.md): a JetStream durable consumer of the delivery notices
// that fetches each announced file from s3:// or file://, checks its size
// and sha256 against the notice, and applies it to PostgreSQL exactly once:
// one transaction per batch of files records the notice ids in
// {schema}.materializer_loaded_files and merges the rows into current-state
// tables, and the notices are acked only after the commit.
//
// The merge makes the result independent of the order in which files
// arrive: per key of an event type the winning version is the newest
// ordering value in any main or correction file (at an equal value a main
// file beats a correction file; otherwise what is loaded stays), and every
// table of the event type holds exactly that version's rows. The winner of
// each key is kept in {schema}.{event_type}_versions.
//
// Schema compiles the configuration into tables and SQL (no I/O); the
// Loader is the component with Run(ctx) error.
package load
