//go:build invariants

package pipeline

// invariants enables runtime checks of the counter identity.
const invariants = true
