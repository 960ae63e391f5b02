package parkinglot

import (
	"fmt"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"

	"github.com/parkinglot/parkinglot/internal/push"
)

// Target is where a push pool (ExecutorPush) delivers each start: a Lambda
// function (LambdaTarget), an HTTPS endpoint (HTTPTarget) or an SQS queue
// (SQSTarget). The task id is the idempotency key: a start is delivered at
// least once.
type Target interface {
	// Type is "lambda", "http" or "sqs".
	Type() string
	target() *target
}

// HTTPMode is how an HTTP target answers a push.
type HTTPMode string

// The HTTP modes.
const (
	// HTTPSync: the target's 2xx answer is the task's outcome. The default.
	HTTPSync HTTPMode = push.ModeSync
	// HTTPAsync: a 2xx answer means the target took the task; it then
	// heartbeats and completes with the lease, like any worker.
	HTTPAsync HTTPMode = push.ModeAsync
)

// TargetOption tunes a target.
type TargetOption func(*target)

// Qualifier invokes a lambda target's version or alias. The function's
// asynchronous invocation destinations are configured on that qualifier.
func Qualifier(q string) TargetOption { return func(t *target) { t.qualifier = q } }

// DeliveryTimeout bounds one delivery attempt (default 30 s, at most
// 15 m): an HTTP target's answer, a Lambda Invoke or an SQS SendMessage.
func DeliveryTimeout(d time.Duration) TargetOption { return func(t *target) { t.timeout = d } }

// MaxAttempts bounds the delivery attempts of a start (default 5, at most
// 100); then the task fails with the error code push_failed.
func MaxAttempts(n int) TargetOption { return func(t *target) { t.maxAttempts = n } }

// target is every Target: the fields of its type are set.
type target struct {
	typ         string
	fn          awslambda.IFunction
	qualifier   string
	url         string
	secret      awssecretsmanager.ISecret
	mode        HTTPMode
	queue       awssqs.IQueue
	timeout     time.Duration
	maxAttempts int
}

func (t *target) Type() string    { return t.typ }
func (t *target) target() *target { return t }

func newTarget(t *target, opts []TargetOption) Target {
	for _, o := range opts {
		o(t)
	}
	return t
}

// LambdaTarget invokes fn asynchronously with each start as its event; the
// function returns the task's result, or fails. The construct grants
// submit, dispatch and expire lambda:InvokeFunction on it and points its
// asynchronous invocation destinations (on success and on failure) at the
// results queue, which dispatch consumes to complete the task. fn may be
// one of the app's functions, an imported one (the destinations' grant
// then goes to its role, if imported with one), a version or an alias; or
// pass Qualifier. The construct owns the function's (or qualifier's)
// asynchronous invocation configuration: do not configure it elsewhere. Its
// maximum event age ends Lambda's retries of an event before the task's
// lease ends: the pool's RunTimeout less the function's timeout (when the
// construct knows it), at least 60 s (infra/cdk/README.md, "Event age of a
// lambda target").
func LambdaTarget(fn awslambda.IFunction, opts ...TargetOption) Target {
	return newTarget(&target{typ: push.TypeLambda, fn: fn}, opts)
}

// HTTPTarget POSTs each start to url (http or https), signed with secret's string
// value when secret is set (header Parkinglot-Signature); mode is HTTPSync
// (also when empty) or HTTPAsync. The functions read the secret from
// Secrets Manager at cold start: the construct grants them read access to
// it and passes only its ARN.
func HTTPTarget(url string, secret awssecretsmanager.ISecret, mode HTTPMode, opts ...TargetOption) Target {
	return newTarget(&target{typ: push.TypeHTTP, url: url, secret: secret, mode: mode}, opts)
}

// SQSTarget sends each start to queue (standard or FIFO; a FIFO message's
// group is the task's tenant). Its workers complete through the API, or by
// sending {taskId, lease, status, result?, error?} to the results queue
// (Parkinglot.ResultsQueue, GrantWorker). The construct grants submit,
// dispatch and expire sending to the queue (and its key, if it has one).
func SQSTarget(queue awssqs.IQueue, opts ...TargetOption) Target {
	return newTarget(&target{typ: push.TypeSQS, queue: queue}, opts)
}

// validate names the first bad field of the target of pool i, named pool.
func (t *target) validate(i int, pool string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("parkinglot: Pools[%d].Target: "+format, append([]any{i}, args...)...)
	}
	switch {
	case t.typ == push.TypeLambda && t.fn == nil:
		return bad("LambdaTarget needs a function")
	case t.typ == push.TypeSQS && t.queue == nil:
		return bad("SQSTarget needs a queue")
	case t.qualifier != "" && t.typ != push.TypeLambda:
		return bad("Qualifier applies to lambda targets only")
	}
	pt := push.Target{Type: t.typ, URL: t.url, Mode: string(t.mode), Qualifier: t.qualifier,
		Timeout: t.timeout, MaxAttempts: t.maxAttempts}
	// The function's ARN and the queue's URL are tokens until deployment:
	// their presence is what can be checked.
	if t.fn != nil {
		pt.Function = "function"
	}
	if t.queue != nil {
		pt.QueueURL = "queue"
	}
	if err := pt.WithDefaults().Validate(pool); err != nil {
		return bad("%v", err)
	}
	return nil
}

// envTarget is t as the functions' PARKINGLOT_TARGETS holds it
// (lambdaapi.EnvTargets): the secret by its ARN, never its value.
type envTarget struct {
	Type        string `json:"type"`
	URL         string `json:"url,omitempty"`
	SecretARN   string `json:"secretArn,omitempty"`
	Mode        string `json:"mode,omitempty"`
	Function    string `json:"function,omitempty"`
	Qualifier   string `json:"qualifier,omitempty"`
	QueueURL    string `json:"queueUrl,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
	MaxAttempts int    `json:"maxAttempts,omitempty"`
}

// env is t in PARKINGLOT_TARGETS, with each reference (the secret's ARN,
// the function's ARN, the queue's URL) as ref makes it.
func (t *target) env(ref func(string) string) *envTarget {
	e := &envTarget{Type: t.typ, URL: t.url, Mode: string(t.mode), Qualifier: t.qualifier, MaxAttempts: t.maxAttempts}
	if t.timeout != 0 {
		e.Timeout = t.timeout.String()
	}
	if t.secret != nil {
		e.SecretARN = ref(*t.secret.SecretArn())
	}
	if t.fn != nil {
		e.Function = ref(*t.fn.FunctionArn())
	}
	if t.queue != nil {
		e.QueueURL = ref(*t.queue.QueueUrl())
	}
	return e
}
