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
// Lambda retries as it retries any asynchronous invocation and then sends
// to the on-failure destination, where it fails the task with the error's
// text.
//
// A start may arrive more than once (delivery is at least once, and Lambda
// itself may run an event twice): the task's id is the idempotency key.
func LambdaHandler(h Handler) func(ctx context.Context, ev api.PushedTask) (json.RawMessage, error) {
	return func(ctx context.Context, ev api.PushedTask) (out json.RawMessage, err error) {
		if ev.ID == "" || ev.Lease == "" {
			return nil, fmt.Errorf("worker: the event is not a pushed task (id and lease are required)")
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
