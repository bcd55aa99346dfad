// Package notify announces delivered files over NATS JetStream
// (docs/files-and-notices.md): one Notice per stored object, on subject {prefix}.{event_type},
// with Nats-Msg-Id = the object key so JetStream drops repeats inside the
// stream's duplicate window. Publish waits for the JetStream ack and
// retries an ack timeout with the same Msg-Id; while NATS is unreachable it
// fails fast with a retryable error and the caller keeps the notice in its
// outbox. Tail prints the notices of a stream as JSON lines
// (`materializer notices`).
package notify
