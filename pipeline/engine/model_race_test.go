//go:build race

package engine

// raceBuild: Pebble checks its invariants under -race (several times
// slower), so the model test runs fewer sequences there.
const raceBuild = true
