//go:build !linux

package blobstore

import "os"

// linkNoReplace makes tmp visible as final without replacing an existing
// final (fs.ErrExist then).
func linkNoReplace(tmp, final string) error { return os.Link(tmp, final) }
