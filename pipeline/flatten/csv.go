package flatten

import "bytes"

// csvOut writes CSV fields per docs/mapping.md: a field is quoted ('"' doubled
// inside) only when it contains the delimiter, a quote, CR or LF, or starts or
// ends with a space. For PostgreSQL's COPY … CSV to read every value back
// exactly, two more values are quoted: a value equal to the null marker (so
// an empty string stays distinguishable from a missing value when null = "")
// and the value \. (PostgreSQL's end-of-data marker).
type csvOut struct {
	delim   byte
	null    string
	special [256]bool // the delimiter, '"', CR, LF
}

func newCSVOut(delim byte, null string) csvOut {
	c := csvOut{delim: delim, null: null}
	for _, b := range []byte{delim, '"', '\r', '\n'} {
		c.special[b] = true
	}
	return c
}

// appendStringField appends s as one field.
func (c *csvOut) appendStringField(dst []byte, s string) []byte {
	start := len(dst)
	dst = append(dst, s...)
	return c.finishField(dst, start)
}

// finishField quotes, in place, the field value written at dst[start:] when
// it needs quoting.
func (c *csvOut) finishField(dst []byte, start int) []byte {
	v := dst[start:]
	if !c.needsQuote(v) {
		return dst
	}
	quotes := bytes.Count(v, []byte{'"'})
	n := len(v)
	for range quotes + 2 {
		dst = append(dst, 0)
	}
	// Shift right from the end, doubling quotes, then open the field.
	w := len(dst) - 1
	dst[w] = '"'
	w--
	for r := start + n - 1; r >= start; r-- {
		dst[w] = dst[r]
		w--
		if dst[r] == '"' {
			dst[w] = '"'
			w--
		}
	}
	dst[w] = '"'
	return dst
}

func (c *csvOut) needsQuote(v []byte) bool {
	if len(v) == 0 {
		return c.null == ""
	}
	if v[0] == ' ' || v[len(v)-1] == ' ' {
		return true
	}
	for _, b := range v {
		if c.special[b] {
			return true
		}
	}
	return (len(v) == len(c.null) && string(v) == c.null) || string(v) == `\.`
}
