package main

// cmdStatus is `materializer status` (DESIGN.md §5), delivered by a later issue.
var cmdStatus = notImplemented("status")
