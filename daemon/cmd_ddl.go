package main

// cmdDDL is `materializer ddl` (DESIGN.md §5), delivered by a later issue.
var cmdDDL = notImplemented("ddl")
