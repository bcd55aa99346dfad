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
		if head != nil {
			c.free(head)
			if head.entry != nil {
				c.tr.abandon(head.entry)
			}
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
		gone, stop := c.handOut(ctx, head, out)
		if stop {
			return
		}
		if gone {
			head = nil
		}
	}
}

// handOut admits b and hands it out, holding c.handing meanwhile: Pause
// takes c.handing after it marked the consumer paused, so once Pause
// returns no batch is on its way out any more. gone: b was handed out or
// dropped; stop: ctx ended.
func (c *Consumer) handOut(ctx context.Context, b *Batch, out chan<- *Batch) (gone, stop bool) {
	c.handing.Lock()
	defer c.handing.Unlock()
	if !c.admit(b) {
		c.free(b)
		return true, false
	}
	held := b.held
	select {
	case out <- b:
		c.cfg.Buffers.release(held)
		return true, false
	case <-c.kick: // a lost notice or a pause: look again
		return false, false
	case <-ctx.Done():
		return false, true
	}
}

// admit registers a batch for commit tracking, or drops it when the
// consumer is paused, its stream was paused, or its partition was lost
// since it was read.
func (c *Consumer) admit(b *Batch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := b.Cursor.Key()
	if c.paused || b.st.dropRest || b.st.epoch[key] != b.epoch {
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
// downstream. owner is the stream /stats names as the partition's new
// owner ("" when not known yet).
func (c *Consumer) partitionLost(sid string, key PartitionKey, owner, why string) {
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
	ev := c.log.Warn().Str("stream_id", sid).Str("partition_event_type", key.EventType).Str("partition", key.Partition)
	if owner != "" {
		ev = ev.Str("new_owner_stream_id", owner)
	}
	ev.Str("why", why).Msg("partition lost")
	signal(c.kick)
}
