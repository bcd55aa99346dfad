package compact

import (
	"bytes"
	"time"
)

// Outcome is what one event does to its key (docs/design.md).
type Outcome uint8

// Outcomes of Decide.
const (
	// Opened: no open session and the event is newer than hi(k) (or hi is
	// unknown): a session opens with the event as its best.
	Opened Outcome = iota + 1
	// Replaced: an open session's best is replaced by this newer event; the
	// old best is counted superseded.
	Replaced
	// Duplicate: same ordering value and same eid as hi(k); dropped, counted.
	Duplicate
	// Correction: lower than hi(k), or equal with another eid; written to the
	// correction file.
	Correction
)

func (o Outcome) String() string {
	switch o {
	case Opened:
		return "opened"
	case Replaced:
		return "replaced"
	case Duplicate:
		return "duplicate"
	case Correction:
		return "correction"
	}
	return "outcome?"
}

// Window holds an event type's session settings.
type Window struct {
	Gap       time.Duration // close after this long without an event for the key
	Max       time.Duration // close after this long open, however busy
	Retention time.Duration // remember hi(k) this long after the close
}

// KeyState is everything compaction remembers about one key. While a session
// is open its best event is hi(k): a session only opens for, and only moves
// to, an event above every value seen.
type KeyState struct {
	HasHi    bool
	Hi       []byte // encoded ordering value of hi(k)
	HiEID    []byte // metadata.eid of the hi event (may be empty)
	Open     bool
	OpenedAt int64 // unix nanoseconds, processing time
	LastAt   int64 // arrival of the newest event of the open session
	ClosedAt int64 // when the last session closed; hi is kept until ClosedAt+Retention
	// Filed is, while a session is open, the deadline its record is filed
	// under in the state (the engine moves it lazily when the session got
	// more events); 0 when closed.
	Filed int64
}

// Event is the part of an event compaction looks at.
type Event struct {
	Order []byte // encoded ordering value
	EID   []byte
}

// Decide classifies ev against st at processing time now and updates st.
// A remembered hi whose retention has passed counts as unknown.
func Decide(st *KeyState, ev Event, now int64, w Window) Outcome {
	if st.HasHi && !st.Open && st.Expired(now, w) {
		*st = KeyState{}
	}
	if st.HasHi {
		switch c := bytes.Compare(ev.Order, st.Hi); {
		case c < 0:
			return Correction
		case c == 0:
			if bytes.Equal(ev.EID, st.HiEID) {
				return Duplicate
			}
			return Correction
		}
	}
	outcome := Opened
	if st.Open {
		outcome = Replaced
	} else {
		st.Open = true
		st.OpenedAt = now
	}
	st.HasHi = true
	st.Hi = append(st.Hi[:0], ev.Order...)
	st.HiEID = append(st.HiEID[:0], ev.EID...)
	st.LastAt = now
	return outcome
}

// Deadline is when the open session must close: session_gap after its newest
// event, or session_max after it opened, whichever comes first.
func (st *KeyState) Deadline(w Window) int64 {
	gap := st.LastAt + int64(w.Gap)
	if lim := st.OpenedAt + int64(w.Max); lim < gap {
		return lim
	}
	return gap
}

// Close ends the open session at now; hi(k) is remembered for the retention.
func (st *KeyState) Close(now int64) {
	st.Open = false
	st.ClosedAt = now
	st.Filed = 0
}

// ExpiresAt is when a closed key's hi(k) is forgotten.
func (st *KeyState) ExpiresAt(w Window) int64 { return st.ClosedAt + int64(w.Retention) }

// Expired reports whether a closed key's hi(k) is past its retention.
func (st *KeyState) Expired(now int64, w Window) bool {
	return !st.Open && st.HasHi && now >= st.ExpiresAt(w)
}
