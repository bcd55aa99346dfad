//go:build invariants

package engine

// invariants enables runtime checks of the counter identity.
const invariants = true
