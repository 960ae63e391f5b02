package lambdaapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// TestPushFunctions: submit pushes a push pool's start to its (async) HTTP
// target before its invocation returns; dispatch completes the task from a
// worker's outcome on the results queue, which starts and pushes the parked
// task, and drops what is not a result rather than having it redelivered.
func TestPushFunctions(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var pushed []api.PushedTask
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var pt api.PushedTask
		require.NoError(t, json.Unmarshal(body, &pt))
		mu.Lock()
		pushed = append(pushed, pt)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(target.Close)
	taken := func() []api.PushedTask {
		mu.Lock()
		defer mu.Unlock()
		return append([]api.PushedTask(nil), pushed...)
	}

	store := memstore.New(memstore.Options{})
	targets := map[string]push.Target{"hook": {Type: push.TypeHTTP, URL: target.URL, Mode: push.ModeAsync}}
	ctx := context.Background()
	fns := map[lambdaapi.Function]*lambdaapi.Handler{}
	for _, fn := range []lambdaapi.Function{lambdaapi.Submit, lambdaapi.Dispatch} {
		p, err := lambdaapi.NewPusher(targets, push.AWSClients{}, nil)
		require.NoError(t, err)
		t.Cleanup(p.Close)
		s, err := core.New(core.Config{Backend: store, Pusher: p})
		require.NoError(t, err)
		p.Bind(s)
		require.NoError(t, s.PutPool(ctx, core.PoolConfig{Name: "hook", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute, Executor: core.ExecutorPush}))
		fns[fn], err = lambdaapi.New(lambdaapi.Config{Function: fn, Scheduler: s, Pusher: p})
		require.NoError(t, err)
	}

	submit := func() string {
		ev := events.APIGatewayV2HTTPRequest{
			Version: "2.0", RouteKey: "POST /v1/pools/{pool}/tasks", RawPath: "/v1/pools/hook/tasks", Body: `{}`,
			Headers: map[string]string{"content-type": "application/json"},
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/v1/pools/hook/tasks"},
				Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"tenant": "acme"}}},
			},
		}
		res, err := lambdaapi.Invoke(ctx, fns[lambdaapi.Submit], ev)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode, res.Body)
		var body api.TaskBody
		require.NoError(t, json.Unmarshal([]byte(res.Body), &body))
		return body.Task.ID
	}
	a := submit()
	require.Len(t, taken(), 1, "pushed before submit's invocation returned")
	require.Equal(t, a, taken()[0].ID)
	b := submit()
	require.Len(t, taken(), 1, "b is parked")

	outcome, err := json.Marshal(api.PushOutcome{TaskID: a, Lease: taken()[0].Lease, Status: "succeeded", Result: json.RawMessage(`{"ok":true}`)})
	require.NoError(t, err)
	sqsEvent, err := json.Marshal(events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "m1", Body: string(outcome), EventSource: "aws:sqs"},
		{MessageId: "m2", Body: `not json`, EventSource: "aws:sqs"},
		{MessageId: "m3", Body: `{"taskId":"nope","lease":"x","status":"succeeded"}`, EventSource: "aws:sqs"},
	}})
	require.NoError(t, err)
	out, err := fns[lambdaapi.Dispatch].Invoke(ctx, sqsEvent)
	require.NoError(t, err)
	var batch events.SQSEventResponse
	require.NoError(t, json.Unmarshal(out, &batch))
	require.Empty(t, batch.BatchItemFailures, "what is not a result is dropped, not received again")
	require.Len(t, taken(), 2, "a's slot went to b, pushed before dispatch's invocation returned")
	require.Equal(t, b, taken()[1].ID)

	ta, err := store.Task(ctx, a)
	require.NoError(t, err)
	require.Equal(t, core.StateSucceeded, ta.State)
	require.JSONEq(t, `{"ok":true}`, string(ta.Result))

	// The same outcome again (a redelivered message) changes nothing.
	out, err = fns[lambdaapi.Dispatch].Invoke(ctx, sqsEvent)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(out, &batch))
	require.Empty(t, batch.BatchItemFailures)
	tb, err := store.Task(ctx, b)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, tb.State)
}
