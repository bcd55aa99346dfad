package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rs/zerolog"

	"materializer/internal/fsync"
	"materializer/pipeline/compact"
	"materializer/pipeline/files"
	"materializer/state"
)

// The session log keeps the best events of open sessions out of Pebble.
// Stored in Pebble, every best event went through its WAL and memtable and
// a blob file — a memtable full of events flushed every fraction of a
// second, and compactions followed — and closing a session read it back
// through the blob machinery. Here a step appends the best events it sets
// to the current segment of the log (a file in the staging directory,
// fsynced with the staging files before the step's batch commits) and a
// session's record names where its event is: segment, offset, length. The
// memtable holds small records only.
//
// A segment has a file record (state.File with logEventType) holding its
// committed length, so recovery cuts it like an open staging file, and a
// checkpoint takes it like one (a full segment is Final: linked as it is).
//
// A segment goes once no session's record points into it. A best event
// belongs to a session that closes at the deadline it was filed under when
// the event was written, unless a newer event replaces it (then it is
// garbage); a session is moved to a later deadline only after it got newer
// events, or when its record is moved with the same event (noted too). So
// the log notes, per segment and slot, the latest deadline filed for an
// event in it: once every such slot's earliest open session is later, the
// segment holds no live event. At start the notes are rebuilt from the
// session records.
type sessionLog struct {
	logger  zerolog.Logger
	dir     string
	writer  string
	maxSize int64
	db      *state.DB
	segs    map[uint64]*segment
	cur     *segment // appended to (nil until the first append)
	pending []byte   // this step's appends to cur
	sealing *segment // became full in this step: its record is written Final
	created bool     // cur was created in this step
}

// segment is one file of the log.
type segment struct {
	rec  state.File
	f    *os.File
	last map[*slot]int64 // per slot, the latest deadline filed for an event in it
	pin  bool            // a record of a slot that is not loaded points into it
}

// logEventType marks the file records of the session log (it is no valid
// Nakadi event type name).
const logEventType = "_sessions"

func logID(seq uint64) state.FileID {
	return state.FileID{EventType: logEventType, Table: "log", Kind: "log", Partition: strconv.FormatUint(seq, 10)}
}

// IsSessionLog reports whether a file record is a segment of the session
// log (not a staging file of rows).
func IsSessionLog(f state.File) bool { return f.ID.EventType == logEventType }

// logLoc is where a best event is in the log.
type logLoc struct {
	seg      uint64
	off, len int64
}

// Session record bodies: what follows the head (appendSessionHead).
const (
	bodyInline = 0 // the best event itself (records upgraded from state format 1)
	bodyLog    = 1 // a logLoc
)

func appendLocBody(dst []byte, l logLoc) []byte {
	dst = append(dst, bodyLog)
	dst = binary.AppendUvarint(dst, l.seg)
	dst = binary.AppendUvarint(dst, uint64(l.off))
	return binary.AppendUvarint(dst, uint64(l.len))
}

// parseBody reads a record body: the event inline, or where it is in the log.
func parseBody(body []byte) (inline []byte, loc logLoc, inLog bool, err error) {
	if len(body) == 0 {
		return nil, loc, false, compact.ErrCorrupt
	}
	if body[0] == bodyInline {
		return body[1:], loc, false, nil
	}
	b := body[1:]
	var vs [3]uint64
	for i := range vs {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, loc, false, compact.ErrCorrupt
		}
		vs[i], b = v, b[n:]
	}
	return nil, logLoc{seg: vs[0], off: int64(vs[1]), len: int64(vs[2])}, true, nil
}

// openLog recovers the log from its segments' records: the newest is cut
// to its committed length, every segment is opened.
func openLog(logger zerolog.Logger, dir, writer string, maxSize int64, db *state.DB, recs []state.File) (*sessionLog, error) {
	l := &sessionLog{logger: logger, dir: dir, writer: writer, maxSize: maxSize, db: db, segs: map[uint64]*segment{}}
	for _, rec := range recs {
		f, err := os.OpenFile(filepath.Join(dir, rec.Name), os.O_RDWR, 0)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("engine: session log segment of committed state: %w", err)
		}
		s := &segment{rec: rec, f: f, last: map[*slot]int64{}}
		l.segs[rec.Seq] = s
		if l.cur == nil || rec.Seq > l.cur.rec.Seq {
			l.cur = s
		}
	}
	if l.cur != nil {
		if err := cut(l.cur); err != nil {
			l.close()
			return nil, err
		}
		if l.cur.rec.Final {
			l.cur = nil
		}
	}
	return l, nil
}

// cut truncates a segment to its committed length (a crash may have left
// more of a step that did not commit).
func cut(s *segment) error {
	fi, err := s.f.Stat()
	switch {
	case err != nil:
		return err
	case fi.Size() < s.rec.Length:
		return fmt.Errorf("engine: session log %s has %d bytes, committed state says %d", s.rec.Name, fi.Size(), s.rec.Length)
	case fi.Size() > s.rec.Length:
		if err := s.f.Truncate(s.rec.Length); err != nil {
			return err
		}
		return s.f.Sync()
	}
	return nil
}

func (l *sessionLog) close() {
	for _, s := range l.segs {
		_ = s.f.Close()
	}
	l.segs = map[uint64]*segment{}
	l.cur, l.pending = nil, nil
}

// names are the segments' file names (recovery keeps these files).
func (l *sessionLog) names() []string {
	out := make([]string, 0, len(l.segs))
	for _, s := range l.segs {
		out = append(out, s.rec.Name)
	}
	return out
}

// append adds a best event to this step's writes and returns where it will
// be. Records of full segments are written by flush.
func (l *sessionLog) append(raw []byte) (logLoc, error) {
	if l.cur == nil || l.cur.rec.Length+int64(len(l.pending)) >= l.maxSize {
		if err := l.next(); err != nil {
			return logLoc{}, err
		}
	}
	loc := logLoc{seg: l.cur.rec.Seq, off: l.cur.rec.Length + int64(len(l.pending)), len: int64(len(raw))}
	l.pending = append(l.pending, raw...)
	return loc, nil
}

// next starts a new segment; the current one must have been flushed (a
// step's appends all go to one segment: a new one starts at the first
// append of a step, or inside one only when nothing is pending).
func (l *sessionLog) next() error {
	if len(l.pending) > 0 {
		// The current segment grows past its size in this step; the
		// next step starts the new one.
		return nil
	}
	seq := uint64(1)
	for s := range l.segs {
		seq = max(seq, s+1)
	}
	rec := state.File{ID: logID(seq), Seq: seq, Name: files.Name(logID(seq), l.writer, seq, "none"), Writer: l.writer, Compression: "none"}
	f, err := os.OpenFile(filepath.Join(l.dir, rec.Name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("engine: session log: %w", err)
	}
	if l.cur != nil {
		l.cur.rec.Final = true // no more appends: flush writes its record so
		l.sealing = l.cur
	}
	s := &segment{rec: rec, f: f, last: map[*slot]int64{}}
	l.segs[seq] = s
	l.cur, l.created = s, true
	return nil
}

// flush writes and fsyncs this step's appends; it returns the records to
// put into the step's batch (the current segment's new length, and the
// segment it replaced as Final).
func (l *sessionLog) flush() ([]state.File, error) {
	if l.cur == nil {
		return nil, nil
	}
	var out []state.File
	if len(l.pending) > 0 {
		if _, err := l.cur.f.WriteAt(l.pending, l.cur.rec.Length); err != nil {
			return nil, fmt.Errorf("engine: session log: write %s: %w", l.cur.rec.Name, err)
		}
		if err := l.cur.f.Sync(); err != nil {
			return nil, fmt.Errorf("engine: session log: fsync %s: %w", l.cur.rec.Name, err)
		}
		l.cur.rec.Length += int64(len(l.pending))
		l.pending = l.pending[:0]
		out = append(out, l.cur.rec)
	}
	if l.sealing != nil {
		out = append(out, l.sealing.rec)
		l.sealing = nil
	}
	if l.created {
		l.created = false
		if err := fsync.Dir(l.dir); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// read returns a best event from the log, appended to dst.
func (l *sessionLog) read(dst []byte, loc logLoc) ([]byte, error) {
	s := l.segs[loc.seg]
	if s == nil {
		return nil, fmt.Errorf("%w: a session's best event is in session log segment %d, which is gone", errBroken, loc.seg)
	}
	n := len(dst)
	dst = append(dst, make([]byte, loc.len)...)
	if _, err := s.f.ReadAt(dst[n:], loc.off); err != nil {
		return nil, fmt.Errorf("engine: session log: read %s at %d: %w", s.rec.Name, loc.off, err)
	}
	return dst, nil
}

// filed notes that a record of slot filed under deadline points into seg.
func (l *sessionLog) filed(seg uint64, sl *slot, deadline int64) {
	if s := l.segs[seg]; s != nil {
		if d, ok := s.last[sl]; !ok || deadline > d {
			s.last[sl] = deadline
		}
	}
}

// dead returns the segments no session's record can point into: not
// pinned, not the current one while it has writes pending, and every slot
// noted has no open session up to the deadline noted.
func (l *sessionLog) dead() []*segment {
	var out []*segment
	for _, s := range l.segs {
		if s.pin || s == l.cur && len(l.pending) > 0 {
			continue
		}
		live := false
		for sl, d := range s.last {
			if sl.nextSession <= d {
				live = true
				break
			}
		}
		if !live {
			out = append(out, s)
		}
	}
	return out
}

// remove deletes dead segments: their records in one synced batch, then
// their files.
func (l *sessionLog) remove(dead []*segment) error {
	if len(dead) == 0 {
		return nil
	}
	b := l.db.NewBatch()
	defer b.Close()
	for _, s := range dead {
		b.DeleteFile(s.rec.ID)
	}
	if err := b.Commit(true); err != nil {
		return err
	}
	for _, s := range dead {
		_ = s.f.Close()
		delete(l.segs, s.rec.Seq)
		if s == l.cur {
			l.cur = nil // the next append starts a segment
		}
		if err := os.Remove(filepath.Join(l.dir, s.rec.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("engine: session log: %w", err)
		}
	}
	return nil
}

func (l *sessionLog) warn(err error) {
	l.logger.Warn().Err(err).Msg("removing a session log segment no session needs failed; it goes at the next start")
}

// rebuild notes, from every session record in state, which slots point
// into which segment up to which deadline; a record of a slot that is not
// loaded (its event type is not configured) pins its segment.
func (l *sessionLog) rebuild(db *state.DB, slots map[state.Slot]*slot, all map[state.Partition]state.Slot) error {
	var head compact.KeyState
	for _, id := range all {
		sl := slots[id]
		err := db.Timers(state.SessionTimer, id, math.MinInt64, math.MaxInt64, func(deadline int64, _, val []byte) (bool, error) {
			rest, err := head.DecodePrefix(val)
			if err != nil {
				return false, err
			}
			_, body, err := splitHead(rest)
			if err != nil {
				return false, err
			}
			_, loc, inLog, err := parseBody(body)
			if err != nil || !inLog {
				return err == nil, err
			}
			switch s := l.segs[loc.seg]; {
			case s == nil:
				return false, fmt.Errorf("%w: a session's best event is in session log segment %d, which is gone", errBroken, loc.seg)
			case sl == nil:
				s.pin = true
			default:
				l.filed(loc.seg, sl, deadline)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
