package parkinglot

import (
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
// function error; dispatch consumes the queue through its event source
// (functions).
func (s *Parkinglot) pushTargets() {
	configured := map[string]bool{}
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
		// Pools may share a function: it has one configuration per
		// qualifier.
		key := *t.fn.Node().Path() + ":" + t.qualifier
		if configured[key] {
			continue
		}
		configured[key] = true
		// No retry of a function error: the error is the task's outcome,
		// and a retry would run the task again. Lambda still retries
		// throttling and its own errors.
		dest := awslambdadestinations.NewSqsDestination(s.ResultsQueue)
		retries := jsii.Number(0)
		if t.qualifier == "" {
			t.fn.ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{OnSuccess: dest, OnFailure: dest, RetryAttempts: retries})
			continue
		}
		awslambda.NewEventInvokeConfig(s.Construct, jsii.String("Destinations-"+p.Name), &awslambda.EventInvokeConfigProps{
			Function:      t.fn,
			Qualifier:     jsii.String(t.qualifier),
			OnSuccess:     dest,
			OnFailure:     dest,
			RetryAttempts: retries,
		})
	}
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
