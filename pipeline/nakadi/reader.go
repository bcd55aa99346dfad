package nakadi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrLineTooLong is returned for a stream line above Config.MaxLineBytes.
var ErrLineTooLong = errors.New("nakadi: stream line too long")

// Sizes of the stream reader. The read buffer is small, so a daemon with a
// thousand event types (a stream each) holds little memory while they are
// idle: a longer line is gathered in a buffer of its own, which the batch
// then takes (one copy per line, as for a short one), so nothing that grew
// for a long line stays with the stream.
const (
	readBufferSize  = 32 << 10  // keep-alives and small batches are read in place
	defaultMaxLine  = 256 << 20 // Nakadi caps its stream buffer at 50 MB
	minReadBuffer   = 4 << 10
	maxReadBufferSz = 64 << 10
)

// streamReader reads batch lines of any size from a stream body and parses
// them. Event batches get one buffer each (the batch owns it); keep-alives
// are parsed in place without a buffer. What a batch holds is reserved in
// the shared Buffers (nil: no bound) before its line is read.
type streamReader struct {
	br       *bufio.Reader
	acc      []byte // gathers a line longer than br's buffer; the batch takes it
	longLine int    // the length of the last long line: a stream's batches are alike
	maxLine  int
	p        parser
	mem      *Buffers
}

func newStreamReader(r io.Reader, bufSize, maxLine int, mem *Buffers) *streamReader {
	bufSize = min(max(bufSize, minReadBuffer), maxReadBufferSz)
	if maxLine <= 0 {
		maxLine = defaultMaxLine
	}
	return &streamReader{br: bufio.NewReaderSize(r, bufSize), maxLine: maxLine, mem: mem}
}

// next returns the next batch (keep-alives included), its memory reserved
// (Batch.held). It returns io.EOF at the clean end of the stream and
// io.ErrUnexpectedEOF inside a line, and ctx's error when it ended while
// the reader waited for memory.
func (r *streamReader) next(ctx context.Context) (*Batch, error) {
	for {
		want, err := r.expect()
		if err != nil {
			return nil, err
		}
		held, err := r.mem.reserve(ctx, want)
		if err != nil {
			return nil, err
		}
		b, err := r.parseLine()
		if err == nil && b != nil {
			b.held, err = r.mem.settle(ctx, held, b.held)
			held = b.held
		}
		if err != nil || b == nil {
			r.mem.release(held)
		}
		if err != nil {
			return nil, err
		}
		if b != nil {
			return b, nil
		}
	}
}

// expect waits, holding no memory, until a line starts, and returns what
// its batch will take: the line itself when the read buffer holds it whole,
// else as much as the last long line (and a little more).
func (r *streamReader) expect() (int64, error) {
	if _, err := r.br.Peek(1); err != nil {
		return 0, err
	}
	buffered, _ := r.br.Peek(r.br.Buffered())
	if i := bytes.IndexByte(buffered, '\n'); i >= 0 {
		return int64(i), nil
	}
	return int64(max(r.longLine+r.longLine/8, 2*r.br.Size())), nil
}

// parseLine reads and parses one line: nil for a blank line. The batch's
// held is what its memory takes.
func (r *streamReader) parseLine() (*Batch, error) {
	line, err := r.readLine()
	if err != nil {
		return nil, err
	}
	if skipWS(line, 0) == len(line) {
		return nil, nil
	}
	b := &Batch{bytes: len(line) + 1}
	err = r.p.parse(line, b)
	switch {
	case err != nil:
	case len(r.p.spans) == 0: // a keep-alive: nothing to keep
	case r.acc != nil: // a long line: the batch takes the buffer it was gathered in
		r.p.fillEvents(line, b)
		b.held = int64(cap(r.acc))
	default:
		buf := append([]byte(nil), line...) // not zeroed first, unlike make+copy
		r.p.fillEvents(buf, b)
		b.held = int64(cap(buf))
	}
	r.acc = nil
	if err != nil {
		return nil, err
	}
	return b, nil
}

// readLine returns the next line without its '\n'. The slice is valid until
// the next call.
func (r *streamReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case err == nil:
		return line[:len(line)-1], nil
	case errors.Is(err, bufio.ErrBufferFull):
	case errors.Is(err, io.EOF) && len(line) > 0:
		return nil, io.ErrUnexpectedEOF
	default:
		return nil, err
	}
	// Sized for a line like the last long one (and a little more), so a
	// batch line is gathered without growing the buffer again and again.
	r.acc = append(make([]byte, 0, max(2*len(line), r.longLine+r.longLine/8)), line...)
	for {
		line, err = r.br.ReadSlice('\n')
		if len(r.acc)+len(line) > r.maxLine {
			r.acc = nil
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, r.maxLine)
		}
		r.acc = append(r.acc, line...)
		switch {
		case err == nil:
			r.longLine = len(r.acc)
			return r.acc[:len(r.acc)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
