// Package nakadi is materializer's client for the Nakadi subscription API
// (the "high-level API"), written to docs/nakadi.md.
//
// A Consumer creates (or gets) one subscription, initializes its cursors with
// an empty PATCH so that read_from takes effect at once, and then streams
// batches forever: it reconnects with capped exponential backoff and jitter,
// retries 409/429/5xx, refreshes the bearer token, and hands every batch
// downstream with its cursor and stream id. The caller declares batches
// durable with Consumer.Durable; the consumer commits, per partition, the
// newest cursor whose batch and every earlier batch of that partition on that
// stream are durable, in one request per stream every Config.CommitInterval.
//
// The first event batch of each partition on each stream carries the
// subscription's committed cursor for that partition (Batch.Committed), read
// after that batch arrived, so the pipeline can skip exactly the redelivered
// events it had already applied. A Batch with Lost set tells the pipeline a
// partition left the stream (422 on commit, or /stats shows another stream).
//
// The batch-line parser is hand-written: it locates the cursor, the byte
// ranges of the events and the info text in one pass, without decoding the
// events. Events are sub-slices of one buffer owned by the batch.
//
// The emulator for tests and the demo is in package emulator.
package nakadi
