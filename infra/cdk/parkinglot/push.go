package parkinglot

import (
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/internal/push"
)

// pushers are the functions that deliver starts to push targets: a start
// happens on a submission, a completion's hand-off, or the sweep, which
// also re-pushes what is pending.
var pushers = []Function{Submit, Dispatch, Expire}

// pushTargets gives the pushers what delivering to each push pool's target
// takes, and no more:
//
//	target  grant to submit, dispatch and expire
//	lambda  lambda:InvokeFunction on the function's ARN, or on its
//	        qualified ARN with Qualifier (Invoke authorizes the ARN it names)
//	sqs     the queue's GrantSendMessages: sqs:SendMessage,
//	        GetQueueAttributes and GetQueueUrl, and encrypt/decrypt with the
//	        queue's key if it has a customer-managed one
//	http    with a secret, its GrantRead (secretsmanager:GetSecretValue and
//	        DescribeSecret), read once at cold start; none without
//
// A lambda target's asynchronous invocation destinations, on success and
// on failure, are set to the results queue (on its qualifier with
// Qualifier), which lets the function send to it, without retries of a
// function error, and with the maximum event age of maxEventAge; dispatch
// consumes the queue through its event source (functions).
func (s *Parkinglot) pushTargets() {
	// Pools may share a function: it has one configuration per qualifier,
	// made for the first of them, with the smallest event age of all.
	type invokeConfig struct {
		t      *target
		pool   string
		maxAge time.Duration
	}
	var configs []*invokeConfig
	byKey := map[string]*invokeConfig{}
	for _, p := range s.props.Pools {
		if p.Target == nil {
			continue
		}
		t := p.Target.target()
		for _, f := range pushers {
			fn := s.Functions[f]
			switch t.typ {
			case push.TypeLambda:
				allow(fn, []string{"lambda:InvokeFunction"}, []*string{t.invokeARN()}, nil)
			case push.TypeSQS:
				t.queue.GrantSendMessages(fn)
			case push.TypeHTTP:
				if t.secret != nil {
					t.secret.GrantRead(fn, nil)
				}
			}
		}
		if t.typ != push.TypeLambda {
			continue
		}
		age := maxEventAge(p.RunTimeout, t.fn)
		key := *t.fn.Node().Path() + ":" + t.qualifier
		if c, ok := byKey[key]; ok {
			c.maxAge = min(c.maxAge, age)
			continue
		}
		byKey[key] = &invokeConfig{t: t, pool: p.Name, maxAge: age}
		configs = append(configs, byKey[key])
	}
	for _, c := range configs {
		// No retry of a function error: the error is the task's outcome,
		// and a retry would run the task again. Lambda still retries
		// throttling and its own errors, within the event age.
		dest := awslambdadestinations.NewSqsDestination(s.ResultsQueue)
		retries := jsii.Number(0)
		age := awscdk.Duration_Seconds(jsii.Number(c.maxAge.Seconds()))
		if c.t.qualifier == "" {
			c.t.fn.ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{OnSuccess: dest, OnFailure: dest,
				RetryAttempts: retries, MaxEventAge: age})
			continue
		}
		awslambda.NewEventInvokeConfig(s.Construct, jsii.String("Destinations-"+c.pool), &awslambda.EventInvokeConfigProps{
			Function:      c.t.fn,
			Qualifier:     jsii.String(c.t.qualifier),
			OnSuccess:     dest,
			OnFailure:     dest,
			RetryAttempts: retries,
			MaxEventAge:   age,
		})
	}
}

// Lambda's bounds of an asynchronous invocation's maximum event age.
const (
	lambdaMinEventAge = time.Minute
	lambdaMaxEventAge = 6 * time.Hour
)

// defaultFunctionTimeout is a Lambda function's timeout when its props
// name none.
const defaultFunctionTimeout = 3 * time.Second

// maxEventAge is how long Lambda may keep an event of a lambda target, in
// a pool of run timeout runTimeout, before it gives up on it (the failure
// destination then fails the task with EventAgeExceeded): long enough to
// retry throttling and Lambda's own errors, and short enough that an
// invocation runs within the task's lease, while the pool counts the task
// against its capacity.
//
// Lambda's 202 to the Invoke is the delivery's end (core's PushAccepted):
// the task is not pushed again, and its lease ends a run timeout after the
// delivery's hold (the delivery timeout and a grace of 5 s), so at least
// runTimeout + 5 s after Lambda queued the event. An invocation that
// starts at age a runs until at most a + the function's timeout: the age
// is the run timeout less the function's timeout, when the construct knows
// it (a function of the app, or its version or alias), else the run
// timeout (the function's run must then fit in it, as any worker's must
// fit in its lease). It is in whole seconds, at least a minute (a
// shorter bound leaves an event up to that much too late: see
// infra/cdk/README.md) and at most 6 hours, Lambda's
// bounds.
func maxEventAge(runTimeout time.Duration, fn awslambda.IFunction) time.Duration {
	age := runTimeout
	if ft, ok := functionTimeout(fn); ok {
		age -= ft
	}
	return min(max(age.Truncate(time.Second), lambdaMinEventAge), lambdaMaxEventAge)
}

// functionTimeout is fn's timeout, when fn is a function of the app, or a
// version or alias of one.
func functionTimeout(fn awslambda.IFunction) (time.Duration, bool) {
	switch f := fn.(type) {
	case interface{ Timeout() awscdk.Duration }:
		if f.Timeout() == nil {
			return defaultFunctionTimeout, true
		}
		return time.Duration(*f.Timeout().ToSeconds(nil) * float64(time.Second)), true
	case interface{ Lambda() awslambda.IFunction }: // a version or an alias
		return functionTimeout(f.Lambda())
	}
	return 0, false
}

// invokeARN is the ARN that invoking a lambda target authorizes: the
// function's, qualified with Qualifier.
func (t *target) invokeARN() *string {
	if t.qualifier == "" {
		return t.fn.FunctionArn()
	}
	return jsii.String(*t.fn.FunctionArn() + ":" + t.qualifier)
}

// targetKeys reports whether an sqs target's queue is encrypted with a
// customer-managed key, which its grant covers.
func (s *Parkinglot) targetKeys() bool {
	for _, p := range s.props.Pools {
		if p.Target != nil && p.Target.target().queue != nil && p.Target.target().queue.EncryptionMasterKey() != nil {
			return true
		}
	}
	return false
}
