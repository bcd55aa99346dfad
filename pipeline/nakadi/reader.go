package nakadi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ErrLineTooLong is returned for a stream line above Config.MaxLineBytes.
var ErrLineTooLong = errors.New("nakadi: stream line too long")

// Sizes of the stream reader.
const (
	readBufferSize  = 1 << 20   // most batch lines fit: one copy per batch
	shrinkAccAbove  = 8 << 20   // drop an accumulation buffer above this after use
	defaultMaxLine  = 256 << 20 // Nakadi caps its stream buffer at 50 MB
	minReadBuffer   = 4 << 10
	maxReadBufferSz = 64 << 20
)

// streamReader reads batch lines of any size from a stream body and parses
// them. Event batches get one buffer each (the batch owns it); keep-alives
// are parsed in place without a buffer.
type streamReader struct {
	br      *bufio.Reader
	acc     []byte // accumulates lines longer than br's buffer
	maxLine int
	p       parser
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
		if err := r.p.parse(line, b); err != nil {
			return nil, err
		}
		if len(r.p.spans) > 0 {
			buf := append([]byte(nil), line...) // not zeroed first, unlike make+copy
			r.p.fillEvents(buf, b)
		}
		r.releaseAcc()
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
	r.acc = append(r.acc[:0], line...)
	for {
		line, err = r.br.ReadSlice('\n')
		if len(r.acc)+len(line) > r.maxLine {
			r.acc = nil
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, r.maxLine)
		}
		r.acc = append(r.acc, line...)
		switch {
		case err == nil:
			return r.acc[:len(r.acc)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// releaseAcc frees a very large accumulation buffer after use.
func (r *streamReader) releaseAcc() {
	if cap(r.acc) > shrinkAccAbove {
		r.acc = nil
	}
}
