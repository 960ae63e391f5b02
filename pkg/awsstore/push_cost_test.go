package awsstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

// TestRequestsPerPushedTask counts, with the real Pusher over the aws
// store, the AWS requests Parkinglot makes per task of a push pool, by
// target type: the store's, the Pusher's (a send to an sqs target) and the
// results queue consumer's. What the target itself calls (a worker reading
// its queue, sending its outcome) is the user's and is not counted. Two
// shapes: tasks started at once (each submitted after the previous ended)
// and tasks that parked behind a full pool (a backlog).
func TestRequestsPerPushedTask(t *testing.T) {
	t.Parallel()
	const n = 8
	for _, kind := range []string{"http-sync", "http-async", "sqs", "sqs-results"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			direct := measurePushed(t, kind, n, false)
			backlog := measurePushed(t, kind, n, true)
			t.Logf("%s, started at once, per task:\n%s", kind, perTask(direct, n))
			t.Logf("%s, parked in a backlog, per task:\n%s", kind, perTask(backlog, n))
			t.Logf("%s: started at once $%.2f, in a backlog $%.2f per million tasks", kind, dollars(direct, n), dollars(backlog, n))

			// The start carries the pending delivery: no transaction of its
			// own; a sync answer is the completion. An accepted push records
			// the acceptance in one more transaction, unless the target
			// completed first (and a completion racing it retries).
			// Counted as committed: a transaction refused and retried (a
			// conflict, or a restamp of the audit order under load) is no
			// transition of its own.
			txn := direct["DynamoDB.TransactWriteItems"]
			if kind == "http-sync" {
				require.Equal(t, 2*n, txn.Calls-txn.Errors, "submit (the start) and complete")
			} else {
				require.GreaterOrEqual(t, txn.Calls-txn.Errors, 2*n)
			}
			if strings.HasPrefix(kind, "sqs") {
				require.Equal(t, n, direct["SQS.SendMessage"].Calls, "one send to the target queue per task")
			} else {
				require.Zero(t, direct["SQS.SendMessage"].Calls)
			}
		})
	}
}

// measurePushed runs n tasks of a push pool whose target is of kind and
// returns the requests counted on the store's clients while they ran.
func measurePushed(t *testing.T, kind string, n int, backlog bool) awsstore.Counts {
	b := setup(t)
	ctx := testCtx(t)
	userSQS := sqs.NewFromConfig(moto.Config()) // the target's own calls: not counted
	var s *core.Scheduler
	var tg push.Target
	var resultsURL string
	var wg sync.WaitGroup
	defer wg.Wait()
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	complete := func(pt api.PushedTask) {
		_, err := s.Complete(ctx, core.CompleteRequest{Tenant: pt.Tenant, TaskID: pt.ID, Lease: pt.Lease, Status: core.StateSucceeded, Result: json.RawMessage(`{"ok":true}`)})
		require.NoError(t, err)
	}
	switch kind {
	case "http-sync":
		srv := httptest.NewServer(worker.HTTPHandler("", func(context.Context, *worker.Task) (any, error) { return map[string]bool{"ok": true}, nil }))
		t.Cleanup(srv.Close)
		tg = push.Target{Type: push.TypeHTTP, URL: srv.URL, Mode: push.ModeSync}
	case "http-async":
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var pt api.PushedTask
			require.NoError(t, json.NewDecoder(r.Body).Decode(&pt))
			w.WriteHeader(http.StatusAccepted)
			wg.Add(1)
			go func() { defer wg.Done(); complete(pt) }() // the target completes later, with the lease
		}))
		t.Cleanup(srv.Close)
		tg = push.Target{Type: push.TypeHTTP, URL: srv.URL, Mode: push.ModeAsync}
	case "sqs", "sqs-results":
		q, err := userSQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("target-" + uniq())})
		require.NoError(t, err)
		tg = push.Target{Type: push.TypeSQS, QueueURL: aws.ToString(q.QueueUrl)}
		if kind == "sqs-results" {
			r, err := userSQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("results-" + uniq())})
			require.NoError(t, err)
			resultsURL = aws.ToString(r.QueueUrl)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for workerCtx.Err() == nil {
				out, err := userSQS.ReceiveMessage(workerCtx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					continue
				}
				for _, m := range out.Messages {
					var pt api.PushedTask
					require.NoError(t, json.Unmarshal([]byte(aws.ToString(m.Body)), &pt))
					if resultsURL == "" {
						complete(pt)
					} else {
						body, _ := json.Marshal(api.PushOutcome{TaskID: pt.ID, Lease: pt.Lease, Status: "succeeded", Result: json.RawMessage(`{"ok":true}`)})
						_, err := userSQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(resultsURL), MessageBody: aws.String(string(body))})
						require.NoError(t, err)
					}
					_, err := userSQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle})
					require.NoError(t, err)
				}
			}
		}()
	}
	p, err := push.New(push.Options{Targets: map[string]push.Target{"p": tg}, AWS: push.AWSClients{SQS: b.sqs}})
	require.NoError(t, err)
	defer p.Close()
	s, err = core.New(core.Config{Backend: b.store, Pusher: p})
	require.NoError(t, err)
	p.Bind(s)
	if resultsURL != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.ConsumeResults(workerCtx, b.sqs, resultsURL, push.ConsumeOptions{Wait: time.Second})
		}()
	}
	capacity := 1
	require.NoError(t, s.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: capacity, MaxParked: 100, DefaultMaxWait: time.Hour, RunTimeout: time.Minute, Executor: core.ExecutorPush}))

	// The test's own reads go through a store whose calls are not counted.
	o := b.opts
	cfg := moto.Config()
	o.DynamoDB, o.SQS = dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	observer, err := awsstore.New(ctx, o)
	require.NoError(t, err)
	run := func(k int, together bool) {
		var ids []string
		for range k {
			res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Payload: json.RawMessage(`{"job":42}`)})
			require.NoError(t, err)
			ids = append(ids, res.Task.ID)
			if !together {
				waitEnded(t, ctx, observer, ids[len(ids)-1:])
			}
		}
		waitEnded(t, ctx, observer, ids)
	}
	run(2, backlog) // warm-up: queue URL cached
	// The results consumer's long polls run whatever the load: its idle
	// receives are counted with the tasks, as they would be.
	before := b.counter.Snapshot()
	if backlog {
		// One task holds the slot while the rest park behind it.
		run(n, true)
	} else {
		run(n, false)
	}
	return b.counter.Snapshot().Sub(before)
}

func waitEnded(t *testing.T, ctx context.Context, observer *awsstore.Store, ids []string) {
	t.Helper()
	for _, id := range ids {
		for {
			tk, err := observer.Task(ctx, id)
			require.NoError(t, err)
			if tk.State.Terminal() {
				require.Equal(t, core.StateSucceeded, tk.State, tk.Error)
				break
			}
			require.NoError(t, ctx.Err(), "task %s still %s", id, tk.State)
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// perTask lists c's requests per task, by operation.
func perTask(c awsstore.Counts, n int) string {
	var names []string
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "  %-32s %5.2f requests  %5.2f modelWCU  %d refused\n", k, float64(c[k].Calls)/float64(n), c[k].ModelWriteUnits/float64(n), c[k].Errors)
	}
	tot := c.Total()
	fmt.Fprintf(&b, "  %-32s %5.2f requests  %5.2f modelWCU", "total", float64(tot.Calls)/float64(n), tot.ModelWriteUnits/float64(n))
	return b.String()
}

// dollars is c's list price per million tasks in us-east-1: DynamoDB
// on-demand ($0.625 per million write units as modeled, $0.125 per million
// read units at 1 per item read), SQS at the FIFO price ($0.50 per million
// requests; standard queues cost $0.40).
func dollars(c awsstore.Counts, n int) float64 {
	var wcu, rcu, sqsReq float64
	for k, o := range c {
		switch {
		case strings.HasPrefix(k, "DynamoDB."):
			wcu += o.ModelWriteUnits
			if k == "DynamoDB.GetItem" || k == "DynamoDB.BatchGetItem" || k == "DynamoDB.Query" {
				rcu += float64(o.Calls)
			}
		case strings.HasPrefix(k, "SQS."):
			sqsReq += float64(o.Calls)
		}
	}
	perTask := (wcu*0.625 + rcu*0.125 + sqsReq*0.50) / float64(n)
	return perTask
}
