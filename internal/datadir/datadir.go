// Package datadir is the one place that knows the layout of a data dir
// (daemon.data_dir) and takes its lock. A checkpoint directory mirrors the
// data dir's state and staging directories, so it uses the same names.
//
//	DATA_DIR/
//	  LOCK                 flock held by `materializer run` (and a restore); holds the holder's PID
//	  state/               the Pebble database (package state)
//	  staging/             staging files, open and sealed (package files)
//	  checkpoints/         local checkpoints (package checkpoint)
//	  RESTORE-PENDING.json a restore whose cursor reset is still to do
package datadir

import "path/filepath"

// Names of the entries of a data dir (and of a checkpoint directory).
const (
	LockName        = "LOCK"
	StateName       = "state"
	StagingName     = "staging"
	CheckpointsName = "checkpoints"
	PendingName     = "RESTORE-PENDING.json"
)

// State is the Pebble directory of a data dir or checkpoint directory.
func State(dir string) string { return filepath.Join(dir, StateName) }

// Staging is the staging directory of a data dir or checkpoint directory.
func Staging(dir string) string { return filepath.Join(dir, StagingName) }

// Checkpoints is the local checkpoint directory of a data dir.
func Checkpoints(dir string) string { return filepath.Join(dir, CheckpointsName) }

// LockFile is the lock file of a data dir.
func LockFile(dir string) string { return filepath.Join(dir, LockName) }

// Pending is the pending-restore marker of a data dir.
func Pending(dir string) string { return filepath.Join(dir, PendingName) }
