package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
)

// LambdaHandler adapts h to an AWS Lambda function that a push pool's
// lambda target invokes: pass the result to lambda.Start
// (github.com/aws/aws-lambda-go/lambda). The event is the start, an
// api.PushedTask; h runs it as a Task, running, with its lease and payload.
// The function returns h's result, which Lambda sends to the function's
// on-success destination, the pool's results queue, where it completes the
// task as succeeded; an error (or a panic) is the function's error, which
// Lambda sends to the on-failure destination after the function's retries
// of asynchronous invocations (the CDK construct sets none: the error is
// the outcome), where it fails the task with the error's text. h's context
// ends with the task's lease, or the invocation's deadline if sooner.
//
// An event whose lease has ended is not run (Lambda may hold a throttled
// event for hours, and the task has timed out and its slot gone to
// another): the function returns an error saying so, which the task's
// outcome no longer takes.
//
// A start may arrive more than once (delivery is at least once, and Lambda
// itself may run an event twice): the task's id is the idempotency key.
func LambdaHandler(h Handler) func(ctx context.Context, ev api.PushedTask) (json.RawMessage, error) {
	return func(ctx context.Context, ev api.PushedTask) (out json.RawMessage, err error) {
		if ev.ID == "" || ev.Lease == "" {
			return nil, fmt.Errorf("worker: the event is not a pushed task (id and lease are required)")
		}
		if !ev.LeaseExpiresAt.IsZero() {
			if !time.Now().Before(ev.LeaseExpiresAt) {
				return nil, fmt.Errorf("worker: task %s not run: its lease ended at %s, before the event ran", ev.ID, ev.LeaseExpiresAt.Format(time.RFC3339))
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, ev.LeaseExpiresAt)
			defer cancel()
		}
		defer func() {
			if v := recover(); v != nil {
				out, err = nil, fmt.Errorf("panic: %v", v)
			}
		}()
		t := &Task{Task: api.Task{
			ID: ev.ID, Key: ev.Key, Tenant: ev.Tenant, Pool: ev.Pool, State: "running", Payload: ev.Payload,
			Deadline: ev.Deadline, Lease: ev.Lease, LeaseExpiresAt: timePtr(ev.LeaseExpiresAt),
		}}
		result, err := h(ctx, t)
		if err != nil {
			return nil, err
		}
		return marshalResult(result)
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
