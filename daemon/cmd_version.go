package main

import (
	"fmt"
	"runtime"
)

// cmdVersion prints the build version and Go toolchain.
func cmdVersion(args []string, io stdio) int {
	fs := newFlags("version", io)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fmt.Fprintf(io.out, "materializer %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
