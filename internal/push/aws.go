package push

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// LambdaInvoker is the call of *lambda.Client a lambda target makes.
type LambdaInvoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// SQSSender is the call of *sqs.Client an sqs target makes.
type SQSSender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// AWSClients send to lambda and sqs targets.
type AWSClients struct {
	Lambda LambdaInvoker
	SQS    SQSSender
}

func (c AWSClients) sender(tg Target, pool string) (sender, error) {
	switch {
	case tg.Type == TypeLambda && c.Lambda == nil:
		return nil, fmt.Errorf("pool %s: a lambda target needs AWS clients: none configured", pool)
	case tg.Type == TypeLambda:
		return lambdaSender{c.Lambda}, nil
	case tg.Type == TypeSQS && c.SQS == nil:
		return nil, fmt.Errorf("pool %s: an sqs target needs AWS clients: none configured", pool)
	case tg.Type == TypeSQS:
		return sqsSender{c.SQS}, nil
	}
	return nil, fmt.Errorf("pool %s: unknown target type %q", pool, tg.Type)
}

// lambdaSender invokes the function asynchronously (InvocationType Event)
// with the start as its event: Lambda's 202 means it queued the event, and
// the function's result reaches the pool's results queue through its
// asynchronous invocation destinations (HandleResult).
type lambdaSender struct{ c LambdaInvoker }

func (l lambdaSender) send(ctx context.Context, tg *Target, t *core.Task, body []byte) result {
	in := &lambda.InvokeInput{
		FunctionName:   aws.String(tg.Function),
		InvocationType: lambdatypes.InvocationTypeEvent,
		Payload:        body,
	}
	if tg.Qualifier != "" {
		in.Qualifier = aws.String(tg.Qualifier)
	}
	out, err := l.c.Invoke(ctx, in)
	if err != nil {
		return awsFailure("invoke "+tg.Function, err)
	}
	if out.StatusCode != 202 {
		return result{err: fmt.Errorf("invoke %s: status %d, want 202 (an asynchronous invocation)", tg.Function, out.StatusCode)}
	}
	return result{accepted: true}
}

// sqsSender sends the start to the user's queue; on a FIFO queue in the
// tenant's message group, deduplicated by the start (task id and lease).
type sqsSender struct{ c SQSSender }

func (s sqsSender) send(ctx context.Context, tg *Target, t *core.Task, body []byte) result {
	in := &sqs.SendMessageInput{QueueUrl: aws.String(tg.QueueURL), MessageBody: aws.String(string(body))}
	if strings.HasSuffix(tg.QueueURL, ".fifo") {
		in.MessageGroupId = aws.String(t.Tenant)
		in.MessageDeduplicationId = aws.String(t.ID + "-" + t.Lease)
	}
	if _, err := s.c.SendMessage(ctx, in); err != nil {
		return awsFailure("send to "+tg.QueueURL, err)
	}
	return result{accepted: true}
}

// awsFailure classifies a failed AWS call: throttling, a service's 5xx or
// no answer at all may pass; any other 4xx (no such function, access
// denied, a bad request) is for good.
func awsFailure(what string, err error) result {
	var ae smithy.APIError
	if errors.As(err, &ae) && transientCodes[ae.ErrorCode()] {
		return result{err: fmt.Errorf("%s: %w", what, err)}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		return result{err: fmt.Errorf("%s: %w", what, err), permanent: code >= 400 && code < 500 && code != 429}
	}
	return result{err: fmt.Errorf("%s: %w", what, err)}
}

// transientCodes are error codes of Lambda, SQS and KMS (behind an
// encrypted queue) that pass with time although their status is a 4xx other
// than 429: throttling, a function being updated, a key's request quota.
var transientCodes = map[string]bool{
	"TooManyRequestsException":      true,
	"ThrottlingException":           true,
	"Throttling":                    true,
	"RequestThrottled":              true,
	"RequestLimitExceeded":          true,
	"EC2ThrottledException":         true,
	"ResourceConflictException":     true, // the function is being updated
	"ResourceNotReadyException":     true,
	"KMSThrottlingException":        true,
	"KmsThrottled":                  true,
	"KMS.ThrottlingException":       true,
	"ServiceUnavailable":            true,
	"ServiceException":              true,
	"SnapStartTimeoutException":     true,
	"EFSMountConnectivityException": true,
	"ExpiredTokenException":         true, // credentials being refreshed
	"InvalidSignatureException":     true, // clock skew
	"RequestTimeTooSkewed":          true,
}
