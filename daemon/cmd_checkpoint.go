package main

// cmdCheckpoint is `materializer checkpoint` (DESIGN.md §5), delivered by a later issue.
var cmdCheckpoint = notImplemented("checkpoint")
