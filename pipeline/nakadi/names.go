package nakadi

import (
	"errors"
	"fmt"
	"regexp"
)

// Partition ids and event type names come from Nakadi and become file
// names, object keys and metric labels downstream: a partition id like
// "../../../tmp/x" would write outside the staging directory, one with '/'
// or NUL, or longer than a file name may be, would fail every processing
// step. The consumer checks every name it reads (a batch line's cursor, a
// /stats answer) before it uses one (docs/nakadi.md).
var (
	// partitionPattern: Nakadi's partition ids are Kafka partition numbers;
	// letters, '-' and '_' are allowed too, dots and everything else not.
	partitionPattern = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)
	// eventTypePattern is Nakadi's own rule for event type names.
	eventTypePattern = regexp.MustCompile(`^[a-zA-Z][-0-9a-zA-Z_]*(\.[0-9a-zA-Z][-0-9a-zA-Z_]*)*$`)
)

// maxEventTypeName is Nakadi's longest event type name.
const maxEventTypeName = 255

// ErrInvalidName is wrapped by the error of a partition id or event type
// name that cannot safely become a file name.
var ErrInvalidName = errors.New("nakadi: invalid name")

// ValidPartition reports whether a partition id is safe to use as a
// (part of a) file name, object key and metric label.
func ValidPartition(p string) bool { return partitionPattern.MatchString(p) }

// ValidEventType reports whether s is a valid Nakadi event type name.
func ValidEventType(s string) bool {
	return len(s) <= maxEventTypeName && eventTypePattern.MatchString(s)
}

// checkNames returns an error wrapping ErrInvalidName when the cursor's
// event type or partition is not valid. The error quotes the name cut short,
// escaped (it may hold any byte).
func checkNames(c Cursor) error {
	switch {
	case !ValidEventType(c.EventType):
		return fmt.Errorf("%w: event type %s is not a Nakadi event type name", ErrInvalidName, quoteName(c.EventType))
	case !ValidPartition(c.Partition):
		return fmt.Errorf("%w: partition %s of event type %s is not a partition id ([0-9A-Za-z_-], 1 to 64 bytes)",
			ErrInvalidName, quoteName(c.Partition), c.EventType)
	}
	return nil
}

func quoteName(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", s[:80], len(s))
	}
	return fmt.Sprintf("%q", s)
}
