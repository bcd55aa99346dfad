package e2etest

import (
	"os"
	"testing"

	"materializer/internal/datadir"
	"materializer/state"
)

// Held is the undelivered work a stopped daemon's data dir holds.
type Held struct {
	OpenSessions uint64 // per the state's counters
	OpenFiles    int    // open staging files in the state
	Outbox       int    // sealed files not yet delivered and announced
	Staging      int    // files in the staging directory
}

// Empty reports whether the data dir holds nothing undelivered.
func (h Held) Empty() bool { return h == Held{} }

// ReadHeld opens a stopped daemon's state (read and closed again) and
// reports what it holds for the event types.
func ReadHeld(t testing.TB, dataDir string, eventTypes ...string) Held {
	t.Helper()
	db, err := state.Open(datadir.State(dataDir), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var h Held
	for _, et := range eventTypes {
		c, err := db.Counters(et)
		if err != nil {
			t.Fatal(err)
		}
		h.OpenSessions += c.Open
	}
	files, err := db.Files()
	if err != nil {
		t.Fatal(err)
	}
	outbox, err := db.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	h.OpenFiles, h.Outbox = len(files), len(outbox)
	staged, err := os.ReadDir(datadir.Staging(dataDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	h.Staging = len(staged)
	return h
}
