//go:build !linux

package checkpoint

// exchange makes staged the data dir and moves the old one to aside.
func exchange(staged, dataDir, aside string) error { return renameTwice(staged, dataDir, aside) }
