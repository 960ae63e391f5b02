package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// DestinationRecord is the invocation record Lambda sends to an
// asynchronous invocation's destination (on success and on failure), as AWS
// documents it ("Capturing records of Lambda asynchronous invocations"):
//
//	{"version": "1.0", "timestamp": "...",
//	 "requestContext": {"requestId": "...", "functionArn": "...:$LATEST",
//	   "condition": "Success" | "RetriesExhausted" | "EventAgeExceeded",
//	   "approximateInvokeCount": 1},
//	 "requestPayload": <the event: an api.PushedTask>,
//	 "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
//	   "functionError": "Unhandled"},
//	 "responsePayload": <the function's result, or {"errorMessage", "errorType"}>}
type DestinationRecord struct {
	Version        string `json:"version"`
	Timestamp      string `json:"timestamp"`
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
	} `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
}

// ErrBadResult is a results-queue message that is neither a Lambda
// destination record of a push nor a worker's outcome: it is dropped.
var ErrBadResult = errors.New("push: not a result")

// HandleResult completes a task from one message of a results queue:
// either the destination record of a lambda target's invocation (the
// function's response is the result; a function error, or Lambda giving up
// on the event, fails the task with the error) or a worker's
// api.PushOutcome with taskId and lease. A result for a task that moved on
// (an earlier result, a cancellation) is no error; an outcome that cannot be
// recorded (a result over core.MaxResultBytes, an unknown status) fails the
// task with the reason. ErrBadResult (wrapped) names what is wrong with a
// message that is neither.
func (p *Pusher) HandleResult(ctx context.Context, body []byte) error {
	var probe struct {
		RequestContext *json.RawMessage `json:"requestContext"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return fmt.Errorf("%w: %v", ErrBadResult, err)
	}
	var o api.PushOutcome
	if probe.RequestContext != nil {
		var err error
		if o, err = fromRecord(body); err != nil {
			return err
		}
	} else if err := json.Unmarshal(body, &o); err != nil {
		return fmt.Errorf("%w: %v", ErrBadResult, err)
	}
	if o.TaskID == "" || o.Lease == "" {
		return fmt.Errorf("%w: taskId and lease are required", ErrBadResult)
	}
	t, err := p.sched.Backend().Task(ctx, o.TaskID)
	if errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("%w: no task %s", ErrBadResult, o.TaskID)
	}
	if err != nil {
		return err
	}
	if o.Status == "" {
		o.Status = string(core.StateSucceeded)
	}
	_, err = p.sched.Complete(ctx, core.CompleteRequest{
		Tenant: t.Tenant, TaskID: t.ID, Lease: o.Lease, Status: core.State(o.Status), Result: o.Result, Error: o.Error,
	})
	var inv *core.InvalidError
	if errors.As(err, &inv) {
		// The outcome cannot be recorded as it is (a result over
		// core.MaxResultBytes, an unknown status): that is the task's
		// failure, rather than a lease left to run out.
		_, err = p.sched.Complete(ctx, core.CompleteRequest{
			Tenant: t.Tenant, TaskID: t.ID, Lease: o.Lease, Status: core.StateFailed,
			Error: fmt.Sprintf("the outcome could not be recorded: %v", inv),
		})
	}
	if errors.Is(err, core.ErrLeaseLost) {
		return nil
	}
	return err
}

// fromRecord reads a Lambda destination record as an outcome.
func fromRecord(body []byte) (api.PushOutcome, error) {
	var rec DestinationRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return api.PushOutcome{}, fmt.Errorf("%w: destination record: %v", ErrBadResult, err)
	}
	var task api.PushedTask
	if err := json.Unmarshal(rec.RequestPayload, &task); err != nil {
		return api.PushOutcome{}, fmt.Errorf("%w: destination record's requestPayload is not a pushed task: %v", ErrBadResult, err)
	}
	o := api.PushOutcome{TaskID: task.ID, Lease: task.Lease}
	if rec.RequestContext.Condition == "Success" && rec.ResponseContext.FunctionError == "" {
		o.Status = string(core.StateSucceeded)
		if len(rec.ResponsePayload) > 0 && string(rec.ResponsePayload) != "null" {
			o.Result = rec.ResponsePayload
		}
		return o, nil
	}
	o.Status = string(core.StateFailed)
	var fe struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	_ = json.Unmarshal(rec.ResponsePayload, &fe)
	switch {
	case fe.ErrorMessage != "" || fe.ErrorType != "":
		o.Error = fmt.Sprintf("%s: %s", fe.ErrorType, fe.ErrorMessage)
	default:
		o.Error = fmt.Sprintf("lambda: %s after %d invocations", rec.RequestContext.Condition, rec.RequestContext.ApproximateInvokeCount)
	}
	return o, nil
}
