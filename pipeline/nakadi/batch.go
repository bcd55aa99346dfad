package nakadi

// Batch is one line of a subscription stream: events of one partition, or a
// "partition lost" signal.
//
// Events are the raw JSON of each event, sub-slices of one buffer the batch
// owns; the pipeline may keep them as long as it keeps the batch.
type Batch struct {
	// StreamID is the X-Nakadi-StreamId of the stream the batch came from.
	StreamID string
	// Cursor points at the last event of the batch.
	Cursor Cursor
	// Events holds the raw JSON of each event, in partition order.
	Events [][]byte
	// Info is info.debug of the line, if any (log it; do not parse it).
	Info string
	// Committed is set on the first event batch of each partition on each
	// stream: the subscription's committed cursor for that partition, read
	// with GET /subscriptions/{id}/cursors after that batch arrived, i.e.
	// exactly where Nakadi resumed. Nil on later batches, and on a first
	// batch when Nakadi lists no committed cursor for the partition (for
	// example Nakadi's dead-letter redrive event type).
	Committed *Cursor
	// Lost is true for the "partition lost" signal: the partition named by
	// Cursor.EventType/Cursor.Partition left stream StreamID (422 on commit,
	// or /stats shows it assigned to another stream). It has no events, and
	// no more batches of that partition come from that stream after it.
	Lost bool

	bytes int          // length of the line, for metrics
	held  int64        // memory reserved in Config.Buffers until handed out or dropped
	entry *entry       // commit tracking, once handed out
	from  *Consumer    // the consumer that handed it out
	st    *streamState // the stream it came from
	epoch int          // the partition's epoch on st when read
}

// Durable is Consumer.Durable of the consumer that handed the batch out:
// for a batch of an event type the pipeline does not know (Nakadi's
// dead-letter redrive event type can appear in any subscription), whose
// consumer it cannot otherwise name. A batch no consumer handed out is
// ignored.
func (b *Batch) Durable() {
	if b.from != nil {
		b.from.Durable(b)
	}
}

// keepAlive reports whether the line had no events.
func (b *Batch) keepAlive() bool { return len(b.Events) == 0 }
