package engine

import (
	"fmt"

	"materializer/pipeline/files"
	"materializer/pipeline/flatten"
	"materializer/state"
)

// rejectedTable describes rejected files (docs/files-and-notices.md): flatten's
// columns, all strings.
func rejectedTable(csv flatten.CSV) tableInfo {
	t := tableInfo{name: files.RejectedTable, header: flatten.RejectedHeader(csv), mapping: "rejected"}
	for _, name := range flatten.RejectedColumns() {
		t.columns = append(t.columns, state.Column{Name: name, Type: "string"})
	}
	return t
}

// emit flattens an event into every table, appends the rows to the files
// of the given kind and counts the event in bucket. An event is atomic: if
// any table rejects it (the mapping changed since the event was
// validated), it goes to the rejected file instead and counts as rejected.
func (e *Engine) emit(st *step, sl *slot, kind string, raw []byte, offset string, occurred int64, bucket *uint64) error {
	et := sl.et
	defer e.shrinkRows()
	if len(raw) > bigEvent {
		defer e.parser.Shrink()
	}
	if err := flatten.CheckEventBytes(raw, et.Mapping.Limits()); err != nil {
		return e.rejectAtEmit(st, sl, raw, offset, err)
	}
	doc, err := e.parser.Parse(raw)
	if err != nil {
		return e.rejectAtEmit(st, sl, raw, offset, err)
	}
	if occurred == 0 {
		if v := doc.Lookup(et.OccurredPath); v.Kind() == flatten.KindString {
			occurred = parseOccurred(v.AppendText(nil))
		}
	}
	lin := flatten.Lineage{EventType: et.Name, Partition: sl.part.Partition, Offset: offset}
	if len(e.rows) < len(et.tables) {
		e.rows = make([]rowBuf, len(et.tables))
	}
	for ti := range et.tables {
		rows, n, err := et.Mapping.AppendRows(e.rows[ti].b[:0], ti, doc, lin)
		e.rows[ti] = rowBuf{rows, n}
		if err != nil {
			return e.rejectAtEmit(st, sl, raw, offset, err)
		}
	}
	*bucket++
	for ti, t := range et.tables {
		if e.rows[ti].n == 0 {
			continue
		}
		id := state.FileID{EventType: et.Name, Table: t.name, Kind: kind, Partition: sl.part.Partition}
		if err := e.appendRows(st, id, &t, e.rows[ti].b, e.rows[ti].n, occurred); err != nil {
			return err
		}
	}
	return nil
}

type rowBuf struct {
	b []byte
	n int
}

// keepRowBytes is the capacity the row buffers keep between events: one
// event's rows may take up to limits.max_event_output_bytes, but that
// memory is not held for the small events after it.
const keepRowBytes = 1 << 20

// shrinkRows drops the row buffers that a large event grew.
func (e *Engine) shrinkRows() {
	for i := range e.rows {
		if cap(e.rows[i].b) > keepRowBytes {
			e.rows[i] = rowBuf{}
		}
	}
}

func (e *Engine) rejectAtEmit(st *step, sl *slot, raw []byte, offset string, cause error) error {
	e.log.Warn().Err(cause).Str("event_type", sl.et.Name).Str("partition", sl.part.Partition).Str("offset", offset).
		Msg("event rejected when its rows were written (the mapping or the limits changed since it was accepted)")
	sl.et.counters.Rejected++
	return e.appendRejected(st, sl, offset, cause.Error(), flatten.Cause(cause), raw)
}

// appendRejected writes one rejected event (docs/files-and-notices.md) and
// counts it by cause (a metric label, added once the step is durable).
func (e *Engine) appendRejected(st *step, sl *slot, offset, reason, cause string, raw []byte) error {
	id := state.FileID{EventType: sl.et.Name, Table: files.RejectedTable, Kind: files.KindRejected, Partition: sl.part.Partition}
	e.rejBuf = flatten.AppendRejectedRow(e.rejBuf[:0], e.opts.CSV, sl.part.Partition, offset, reason, raw, e.opts.MaxRejectedRaw)
	err := e.appendRows(st, id, &e.rejected, e.rejBuf, 1, 0)
	if cap(e.rejBuf) > keepRowBytes {
		e.rejBuf = nil // grown for a large event
	}
	if err != nil {
		return err
	}
	st.countReject(sl.et.Name, cause)
	return nil
}

// appendRows appends rows to the open file of id, opening one first if
// there is none (or if it was opened under other columns: that one is
// sealed): its sequence number is taken (and made durable in this step's
// batch) and its header written.
func (e *Engine) appendRows(st *step, id state.FileID, t *tableInfo, rows []byte, n int, occurred int64) error {
	if f, ok := e.stage.Lookup(id); ok && f.Mapping != t.mapping {
		// Opened before a restart under other columns: seal it before a
		// row of these columns goes in (its header names the old ones).
		delete(e.forceSeal, id)
		if err := e.seal(st, id); err != nil {
			return err
		}
	}
	if _, ok := e.stage.Lookup(id); !ok {
		seq, err := e.nextSeq(id)
		if err != nil {
			return err
		}
		rec := state.File{
			ID: id, Seq: seq, Name: files.Name(id, e.db.WriterID(), seq, e.opts.Compression), Writer: e.db.WriterID(),
			Created: st.now, Mapping: t.mapping, Header: e.opts.CSV.Header,
			Compression: e.opts.Compression, Columns: t.columns,
		}
		var header []byte
		if e.opts.CSV.Header {
			header = t.header
		}
		if err := e.stage.Create(rec, header); err != nil {
			return err
		}
		e.seqs[id] = seq + 1
		st.batch.PutNextSeq(id, seq+1)
	}
	return e.stage.Append(id, rows, n, 1, occurred)
}

func (e *Engine) nextSeq(id state.FileID) (uint64, error) {
	if seq, ok := e.seqs[id]; ok {
		return seq, nil
	}
	seq, err := e.db.NextSeq(id)
	if err != nil {
		return 0, fmt.Errorf("engine: next file seq: %w", err)
	}
	return seq, nil
}
