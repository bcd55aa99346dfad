package blobstore

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Server-side encryption modes for Options.SSE.
const (
	SSENone   = ""
	SSEAES256 = "AES256"
	SSEKMS    = "aws:kms"
)

const (
	minPartSize = 5 << 20 // S3's minimum for every part but the last
	maxParts    = 10000   // S3's maximum number of parts
)

// Options configure Open. The zero value works for file:// targets and,
// with Region set, for AWS S3 with the default credential chain.
type Options struct {
	// Region of the bucket. Required for AWS; "us-east-1" is used when
	// Endpoint is set and Region is empty.
	Region string
	// Endpoint of an S3-compatible store (http://host:port). When set,
	// requests use path-style addressing and checksums only where required.
	Endpoint string
	// AccessKeyIDFile and SecretAccessKeyFile name files holding static
	// credentials (re-read every 5 minutes). Empty: the AWS default chain
	// (environment, shared config, web identity, ECS, EC2 instance profile).
	AccessKeyIDFile     string
	SecretAccessKeyFile string
	// SSE is the server-side encryption: "" (bucket default), "AES256" or
	// "aws:kms" with KMSKeyID (empty KMSKeyID = the AWS managed key).
	SSE      string
	KMSKeyID string
	// PartSize of multipart uploads (default 16 MiB, at least 5 MiB; grown
	// automatically so a file needs at most 10 000 parts).
	PartSize int64
	// MultipartThreshold: files of at least this size use multipart
	// uploads (default 64 MiB).
	MultipartThreshold int64
	// PartConcurrency bounds the parts of one Put in flight (default 4).
	PartConcurrency int
	// MaxAttempts per S3 request, first try included (default 8).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts (defaults 100 ms and 15 s); the delay is jittered.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// ResponseTimeout bounds the wait for response headers after a request
	// was sent (default 2 min), so a hung connection is retried.
	ResponseTimeout time.Duration
	// FileMode of files written by the file:// target (default 0644).
	FileMode uint32

	Logger     zerolog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Now        func() time.Time      // default time.Now
}

func (o Options) withDefaults() Options {
	if o.PartSize == 0 {
		o.PartSize = 16 << 20
	}
	if o.MultipartThreshold == 0 {
		o.MultipartThreshold = 64 << 20
	}
	if o.PartConcurrency == 0 {
		o.PartConcurrency = 4
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 8
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 15 * time.Second
	}
	if o.ResponseTimeout == 0 {
		o.ResponseTimeout = 2 * time.Minute
	}
	if o.FileMode == 0 {
		o.FileMode = 0o644
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.SSE != SSENone && o.SSE != SSEAES256 && o.SSE != SSEKMS:
		return fmt.Errorf("%w: sse %q: want %q or %q", ErrConfig, o.SSE, SSEAES256, SSEKMS)
	case o.KMSKeyID != "" && o.SSE != SSEKMS:
		return fmt.Errorf("%w: kms key id set but sse is %q", ErrConfig, o.SSE)
	case o.PartSize < minPartSize:
		return fmt.Errorf("%w: part size %d below 5 MiB", ErrConfig, o.PartSize)
	case o.MultipartThreshold < o.PartSize:
		return fmt.Errorf("%w: multipart threshold %d below part size %d", ErrConfig, o.MultipartThreshold, o.PartSize)
	case o.PartConcurrency < 1 || o.MaxAttempts < 1:
		return fmt.Errorf("%w: part concurrency and max attempts must be positive", ErrConfig)
	case (o.AccessKeyIDFile == "") != (o.SecretAccessKeyFile == ""):
		return fmt.Errorf("%w: set both access key id file and secret access key file, or neither", ErrConfig)
	}
	return nil
}
