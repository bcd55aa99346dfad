package main

// cmdNotices is `materializer notices` (DESIGN.md §5), delivered by a later issue.
var cmdNotices = notImplemented("notices")
