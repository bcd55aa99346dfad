package main

// cmdDemo is `materializer demo` (DESIGN.md §5), delivered by a later issue.
var cmdDemo = notImplemented("demo")
