package nakadi

import "context"

// dispatch hands batches from the stream reader to out, in order. It is
// the only writer of out, so a "partition lost" notice is ordered with the
// batches: every batch of that partition and stream handed out before the
// notice, none after it. A batch is registered with the commit tracker
// before it is handed out (the pipeline may call Durable at once) and
// unregistered if it is dropped instead (pause, lost).
func (c *Consumer) dispatch(ctx context.Context, in <-chan *Batch, out chan<- *Batch) {
	var head *Batch
	defer func() {
		if head != nil && head.entry != nil {
			c.tr.abandon(head.entry)
		}
	}()
	for {
		if n := c.popLost(); n != nil {
			select {
			case out <- n:
			case <-ctx.Done():
				return
			}
			continue
		}
		if head == nil {
			select {
			case head = <-in:
			case <-c.kick:
				continue
			case <-ctx.Done():
				return
			}
		}
		if !c.admit(head) {
			head = nil
			continue
		}
		select {
		case out <- head:
			head = nil
		case <-c.kick: // a lost notice or a pause: look again
		case <-ctx.Done():
			return
		}
	}
}

// admit registers a batch for commit tracking, or drops it when its stream
// was paused or its partition was lost since it was read.
func (c *Consumer) admit(b *Batch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := b.Cursor.Key()
	if b.st.dropRest || b.st.epoch[key] != b.epoch {
		if b.entry != nil {
			c.tr.abandon(b.entry)
			b.entry = nil
		}
		return false
	}
	if b.entry == nil {
		b.entry = c.tr.add(b, c.now())
		b.from = c
		c.owner[key] = b.StreamID
	}
	return true
}

// popLost takes the oldest queued lost notice.
func (c *Consumer) popLost() *Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lostQ) == 0 {
		return nil
	}
	n := c.lostQ[0]
	c.lostQ = c.lostQ[1:]
	return n
}

// partitionLost handles a partition that left stream sid (422 on commit,
// or /stats shows another stream): its pending cursors are dropped, batches
// of it from sid not yet handed out are dropped, and — if sid is the
// stream the pipeline last got the partition from — a Lost notice goes
// downstream.
func (c *Consumer) partitionLost(sid string, key PartitionKey, why string) {
	c.tr.drop(streamPart{sid, key})
	c.mu.Lock()
	if st := c.streams[sid]; st != nil && !st.lost[key] {
		st.lost[key] = true
		st.epoch[key]++
	}
	emit := c.owner[key] == sid
	if emit {
		c.owner[key] = ""
		c.lostQ = append(c.lostQ, &Batch{StreamID: sid, Lost: true,
			Cursor: Cursor{EventType: key.EventType, Partition: key.Partition}})
	}
	c.mu.Unlock()
	if !emit {
		return
	}
	c.m.lost.WithLabelValues(key.EventType, key.Partition).Inc()
	c.log.Warn().Str("stream_id", sid).Str("partition_event_type", key.EventType).Str("partition", key.Partition).
		Str("why", why).Msg("partition lost")
	signal(c.kick)
}
