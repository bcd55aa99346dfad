package flatten

import (
	"bytes"
	"io"
	"strconv"
)

// WriteNDJSON is the core of `materializer flatten`: it reads NDJSON events
// from r (one JSON object per line, "\n" or "\r\n" line ends, lines of any
// length) and writes to stdout what the main file of table ti would hold
// without compaction: the header (when the [csv] header option is set, even
// if no row follows), then the rows of every accepted event in input order.
// ti must be a table index of m (see Mapping.TableIndex).
//
// Lines are numbered from 1. A blank line (empty or JSON whitespace only) is
// skipped. An event that does not parse, or that any column of any table
// rejects (events are atomic, so every table is checked, not only ti), or
// that exceeds the mapping's Limits, is reported on stderr as one line
// `line N: <reason>` and counted in rejected. A line longer than
// Limits.EventBytes is skipped without being held in memory.
// lin gives the lineage of the event on line N; nil means none. err is
// only a read or write error (after a read error, the rows of the complete
// lines before it are still written); the caller exits 1 when rejected > 0.
func WriteNDJSON(r io.Reader, stdout, stderr io.Writer, m *Mapping, ti int, lin func(line int) Lineage) (rejected int, err error) {
	var out, msg []byte
	if m.header {
		out = append(out, m.tables[ti].header...)
	}
	lr := lineReader{r: r, max: m.limits.EventBytes}
	var p Parser
	for n := 1; ; n++ {
		line, skipped, ok := lr.next()
		if !ok {
			break
		}
		reason := ""
		if skipped > 0 {
			reason = (&LimitError{Limit: LimitEventBytes, Max: m.limits.EventBytes, Size: skipped}).Error()
		} else {
			reason = flattenLine(&p, m, ti, line, n, lin, &out)
		}
		if reason != "" {
			rejected++
			msg = append(append(append(msg[:0], "line "...), strconv.Itoa(n)...), ": "...)
			msg = append(append(msg, reason...), '\n')
			if _, err := stderr.Write(msg); err != nil {
				return rejected, err
			}
		}
		if len(out) >= 64<<10 {
			if _, err := stdout.Write(out); err != nil {
				return rejected, err
			}
			out = out[:0]
		}
	}
	if _, err := stdout.Write(out); err != nil {
		return rejected, err
	}
	return rejected, lr.err
}

// flattenLine appends the rows of one NDJSON line to *out; it returns the
// reason when the event is rejected.
func flattenLine(p *Parser, m *Mapping, ti int, line []byte, n int, lin func(int) Lineage, out *[]byte) string {
	if len(bytes.Trim(line, " \t\r\n")) == 0 {
		return ""
	}
	d, err := p.Parse(line)
	if err == nil {
		err = m.Validate(d)
	}
	if err != nil {
		return sanitize(err.Error())
	}
	var l Lineage
	if lin != nil {
		l = lin(n)
	}
	*out, _, err = m.AppendRows(*out, ti, d, l)
	if err != nil { // Validate agreed this event is fine
		panic("flatten: AppendRows rejects what Validate accepted: " + err.Error())
	}
	return ""
}

// lineReader splits a reader into lines; a line longer than max bytes (when
// max > 0) is skipped without being held in memory.
type lineReader struct {
	r          io.Reader
	max        int
	buf        []byte
	start, end int // the unread bytes are buf[start:end]
	eof        bool
	err        error
}

// next returns the next line without its "\n", or for a line longer than
// max, nil and its length (skipped > 0); ok is false at the end of the
// input or on a read error (then err is set).
func (l *lineReader) next() (line []byte, skipped int, ok bool) {
	for scanned := 0; ; {
		if i := bytes.IndexByte(l.buf[l.start+scanned:l.end], '\n'); i >= 0 {
			line = l.buf[l.start : l.start+scanned+i]
			l.start += scanned + i + 1
			return line, 0, true
		}
		scanned = l.end - l.start
		if l.max > 0 && scanned > l.max {
			return nil, l.skip(), true
		}
		if l.eof {
			if scanned == 0 || l.err != nil {
				return nil, 0, false
			}
			line = l.buf[l.start:l.end]
			l.start = l.end
			return line, 0, true
		}
		l.fill()
	}
}

// skip drops the rest of a line whose start is buffered and returns the
// line's length.
func (l *lineReader) skip() int {
	n := 0
	for {
		if i := bytes.IndexByte(l.buf[l.start:l.end], '\n'); i >= 0 {
			l.start += i + 1
			return n + i
		}
		n += l.end - l.start
		l.start, l.end = 0, 0
		if l.eof {
			return n
		}
		l.fill()
	}
}

// fill reads more input, compacting or growing the buffer first.
func (l *lineReader) fill() {
	if l.start > 0 {
		l.end = copy(l.buf, l.buf[l.start:l.end])
		l.start = 0
	}
	if l.end == len(l.buf) {
		l.buf = append(l.buf, make([]byte, max(64<<10, len(l.buf)))...)
	}
	n, err := l.r.Read(l.buf[l.end:])
	l.end += n
	if err == io.EOF {
		l.eof = true
	} else if err != nil {
		l.eof, l.err = true, err
	}
}
