//go:build race

package pipeline

// raceBuild: Pebble checks its invariants under -race (several times
// slower), so the model test runs fewer sequences there.
const raceBuild = true
