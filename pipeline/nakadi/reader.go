package nakadi

import (
	"bufio"
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
	maxReadBufferSz = 64 << 20
)

// streamReader reads batch lines of any size from a stream body and parses
// them. Event batches get one buffer each (the batch owns it); keep-alives
// are parsed in place without a buffer.
type streamReader struct {
	br       *bufio.Reader
	acc      []byte // gathers a line longer than br's buffer; the batch takes it
	longLine int    // the length of the last long line: a stream's batches are alike
	maxLine  int
	p        parser
}

func newStreamReader(r io.Reader, bufSize, maxLine int) *streamReader {
	bufSize = min(max(bufSize, minReadBuffer), maxReadBufferSz)
	if maxLine <= 0 {
		maxLine = defaultMaxLine
	}
	return &streamReader{br: bufio.NewReaderSize(r, bufSize), maxLine: maxLine}
}

// next returns the next batch (keep-alives included). It returns io.EOF at
// the clean end of the stream and io.ErrUnexpectedEOF inside a line.
func (r *streamReader) next() (*Batch, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if skipWS(line, 0) == len(line) {
			continue // blank line
		}
		b := &Batch{bytes: len(line) + 1}
		err = r.p.parse(line, b)
		switch {
		case err != nil:
		case len(r.p.spans) == 0: // a keep-alive: nothing to keep
		case r.acc != nil: // a long line: the batch takes the buffer it was gathered in
			r.p.fillEvents(line, b)
		default:
			buf := append([]byte(nil), line...) // not zeroed first, unlike make+copy
			r.p.fillEvents(buf, b)
		}
		r.acc = nil
		if err != nil {
			return nil, err
		}
		return b, nil
	}
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
