// Package checkpoint takes, lists, copies and restores consistent snapshots
// of a data dir (docs/checkpoints.md): the Pebble state, the staging
// files cut to their committed lengths, the outbox's sealed files, and a
// manifest naming the per-partition cursors, the event types' fingerprints
// and counters, and every file with its size and sha256.
//
// Taking one pauses the state writer (between two steps) only to hard-link
// the staging files the committed state names. Pebble's checkpoint (SSTs
// linked, a WAL kept small by a flush just before copied) follows with
// ingestion going on: every step is one atomic batch, so it is a step
// boundary at or after the pause, and the linked files (whose inodes only
// grow past their committed lengths) hold what it names. Cutting, hashing
// and uploading run outside the pause too. A checkpoint exists only once
// its manifest is written, locally and remotely; anything without one is
// unfinished and cleaned up.
//
// Local checkpoints live in DATA_DIR/checkpoints/<id>/. The remote copy
// (s3:// or file://) is content-addressed, so each upload sends only the
// files the store lacks — mostly new SSTs and the open staging files.
//
// A restore materializes a checkpoint next to the data dir while verifying
// every checksum, gives the state a new writer id (open staging files are
// renamed with it, so they never collide with files the lost daemon
// delivered later), and swaps it in for the data dir, keeping the old one
// aside. The caller then moves the Nakadi cursors back to the checkpoint's.
package checkpoint
