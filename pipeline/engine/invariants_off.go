//go:build !invariants

package pipeline

// invariants enables runtime checks of the counter identity; test builds
// set it with the `invariants` tag.
const invariants = false
