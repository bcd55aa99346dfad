package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"materializer/internal/datadir"
	"materializer/internal/fsync"
	"os"
	"path/filepath"
	"time"
)

// PendingName is the marker a restore leaves in the data dir until the
// Nakadi cursors are reset: `materializer run` refuses to start while it
// exists (the subscription would resume after the lost daemon's cursors
// and skip the events between).
const PendingName = datadir.PendingName

// Pending is the cursor reset a restore still has to do.
type Pending struct {
	Checkpoint string      `json:"checkpoint"`
	Created    time.Time   `json:"created"`
	Resets     []ResetPlan `json:"resets"`
}

// ReadPending returns the data dir's pending restore (nil when none).
func ReadPending(dataDir string) (*Pending, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, PendingName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var p Pending
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", PendingName, err)
	}
	return &p, nil
}

// CheckNoPending fails with ErrRestorePending while a restore has not
// reset the Nakadi cursors.
func CheckNoPending(dataDir string) error {
	if _, err := os.Stat(filepath.Join(dataDir, PendingName)); err == nil {
		return fmt.Errorf("%w: %s exists: the data dir was restored but the Nakadi cursors were not reset; run `materializer checkpoint restore -resume` first",
			ErrRestorePending, filepath.Join(dataDir, PendingName))
	}
	return nil
}

// ClearPending removes the marker once the cursors are reset.
func ClearPending(dataDir string) error {
	if err := os.Remove(filepath.Join(dataDir, PendingName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return fsync.Dir(dataDir)
}

// SwapIn puts the staged, prepared checkpoint in place of dataDir: it
// writes the pending marker, moves the old data dir's local checkpoints
// over (they stay valid and listed), then swaps the directories with one
// atomic rename (RENAME_EXCHANGE where the file system has it) and moves
// the old data dir aside to DATA_DIR.before-restore-<time>, which it
// returns ("" when there was no data dir). Nothing is deleted.
func (st *Staged) SwapIn(dataDir string, p *Pending, now time.Time) (string, error) {
	dataDir = filepath.Clean(dataDir)
	data, _ := json.MarshalIndent(p, "", "  ")
	if err := writeFileSync(filepath.Join(st.Dir, PendingName), append(data, '\n')); err != nil {
		return "", err
	}
	if err := fsync.Dir(st.Dir); err != nil {
		return "", err
	}
	if _, err := os.Stat(dataDir); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(st.Dir, dataDir); err != nil {
			return "", fmt.Errorf("checkpoint: %w", err)
		}
		st.Dir = dataDir
		return "", fsync.Dir(filepath.Dir(dataDir))
	}
	old := datadir.Checkpoints(dataDir)
	if _, err := os.Stat(old); err == nil {
		if err := os.Rename(old, datadir.Checkpoints(st.Dir)); err != nil {
			return "", fmt.Errorf("checkpoint: move local checkpoints: %w", err)
		}
	}
	aside := fmt.Sprintf("%s.before-restore-%s", dataDir, now.UTC().Format("20060102T150405Z"))
	if err := exchange(st.Dir, dataDir, aside); err != nil {
		return "", err
	}
	st.Dir = dataDir
	return aside, fsync.Dir(filepath.Dir(dataDir))
}

// renameTwice is the swap without an atomic exchange: between the two
// renames the data dir is briefly absent (a crash there leaves both
// directories, under their names).
func renameTwice(staged, dataDir, aside string) error {
	if err := os.Rename(dataDir, aside); err != nil {
		return fmt.Errorf("checkpoint: move the old data dir aside: %w", err)
	}
	if err := os.Rename(staged, dataDir); err != nil {
		return fmt.Errorf("checkpoint: move the restored data dir in: %w", err)
	}
	return nil
}
