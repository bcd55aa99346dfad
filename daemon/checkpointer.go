package main

import "context"

// checkpointer takes periodic and on-demand checkpoints of a running
// pipeline (DESIGN.md §10; the checkpoint/ package does the work).
//
// STUB: the checkpoints issue replaces this file.
type checkpointer interface {
	// Run takes periodic checkpoints until ctx ends (and one before a clean
	// shutdown when checkpoint.on_shutdown is set).
	Run(ctx context.Context) error
	// Take takes a checkpoint now and describes it.
	Take(ctx context.Context) (any, error)
	// List lists local and remote checkpoints, newest first.
	List(ctx context.Context) (any, error)
}

// newCheckpointer returns nil until checkpoints exist: the admin API then
// answers 503.
func newCheckpointer(e *engine) checkpointer { return nil }
