package awsstore

import (
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// NewRetryer returns the retryer to build the backend's SDK clients with:
// the SDK's standard retryer (throttling errors, 5xx and transient network
// errors, with jittered exponential backoff) with up to maxAttempts attempts
// (default 8 when zero) and backoff up to 2s, and without the client-side
// retry quota, so that a burst of throttling does not turn into failures
// that a retry would have absorbed. Every wait ends with the caller's ctx.
func NewRetryer(maxAttempts int) aws.Retryer {
	if maxAttempts <= 0 {
		maxAttempts = 8
	}
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = 2 * time.Second
		o.RateLimiter = ratelimit.None
	})
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
