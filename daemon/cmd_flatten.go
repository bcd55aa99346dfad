package main

// cmdFlatten is `materializer flatten` (DESIGN.md §5), delivered by a later issue.
var cmdFlatten = notImplemented("flatten")
