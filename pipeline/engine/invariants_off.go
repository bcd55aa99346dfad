//go:build !invariants

package engine

// invariants enables runtime checks of the counter identity; test builds
// set it with the `invariants` tag.
const invariants = false
