// Package failpoint names the persistence boundaries where crash tests kill
// the process. In production builds Inject does nothing; binaries built with
// the `failpoints` tag kill themselves (SIGKILL, no cleanup) at the boundary
// named by the environment variable MATERIALIZER_FAILPOINT, as
// "name" (the first time it is reached) or "name:N" (the N-th time).
package failpoint

// Names of the failpoints, one per persistence boundary.
const (
	BeforeStateCommit = "before-state-commit" // staging files fsynced, state batch not committed
	AfterStateCommit  = "after-state-commit"  // state durable, Nakadi cursor not committed
	AfterUpload       = "after-upload"        // object in storage, notice not published
	AfterNotice       = "after-notice"        // notice acknowledged, outbox entry not removed
	MidFileWrite      = "mid-file-write"      // half of a step's rows written to a staging file

	LoadAfterDownload = "load-after-download" // loader: a batch's files fetched and checked, nothing applied
	LoadAfterCopy     = "load-after-copy"     // loader: files copied and merged, transaction not committed
	LoadAfterCommit   = "load-after-commit"   // loader: transaction committed, notices not acked
)

// Env is the environment variable that arms a failpoint.
const Env = "MATERIALIZER_FAILPOINT"
