package deliver

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// newRetryer is the SDK's standard retryer with our attempts and backoff,
// without the client-side retry quota (an outage must not turn into
// "retry quota exceeded" errors once the store is back), also retrying
// every 5xx and 429. onRetry is called before each retry.
func newRetryer(o Options, onRetry func(int, error)) aws.Retryer {
	std := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.MaxAttempts
		so.MaxBackoff = o.MaxBackoff
		so.Backoff = backoff{min: o.MinBackoff, max: o.MaxBackoff}
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

// backoff is capped exponential backoff with "equal jitter": the delay
// for attempt n is uniform in [d/2, d] with d = min(max, min·2^(n-1)).
type backoff struct{ min, max time.Duration }

func (b backoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	return b.delay(attempt), nil
}

func (b backoff) delay(attempt int) time.Duration {
	d := b.max
	if attempt < 1 {
		attempt = 1
	}
	if attempt < 40 {
		if e := b.min << (attempt - 1); e > 0 && e < b.max {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
