package blobstore

import (
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"materializer/internal/backoff"
)

// newRetryer is the SDK's standard retryer with our attempts and backoff,
// without the client-side retry quota (an outage must not turn into
// "retry quota exceeded" errors once the store is back), also retrying
// every 5xx and 429. onRetry is called before each retry.
func newRetryer(o Options, onRetry func(int, error)) aws.Retryer {
	std := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.MaxAttempts
		so.MaxBackoff = o.MaxBackoff
		so.Backoff = jittered{min: o.MinBackoff, max: o.MaxBackoff}
		so.RateLimiter = ratelimit.None
		so.Retryables = append(so.Retryables, retry.IsErrorRetryableFunc(retryableStatus))
	})
	return &countingRetryer{RetryerV2: std, onRetry: onRetry}
}

func retryableStatus(err error) aws.Ternary {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		if c := re.HTTPStatusCode(); c >= 500 || c == 429 {
			return aws.TrueTernary
		}
	}
	return aws.UnknownTernary
}

type countingRetryer struct {
	aws.RetryerV2
	onRetry func(int, error)
}

func (r *countingRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	r.onRetry(attempt, err)
	return r.RetryerV2.RetryDelay(attempt, err)
}

// jittered gives the SDK's retryer our backoff (backoff.Delay).
type jittered struct{ min, max time.Duration }

func (b jittered) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	return backoff.Delay(attempt, b.min, b.max), nil
}
