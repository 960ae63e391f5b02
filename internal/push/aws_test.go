package push_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaemu"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

var moto *mototest.Server

// workerEnv, set, makes the test binary a Lambda function's bootstrap:
// the worker of the lambda targets' tests, under lambdaemu's Runtime API.
const workerEnv = "PARKINGLOT_PUSH_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		lambda.Start(worker.LambdaHandler(work))
		return
	}
	os.Exit(mototest.RunMain(m, &moto, "the push target tests"))
}

// job is the payload of a test task.
type job struct {
	N       int    `json:"n"`
	SleepMS int    `json:"sleepMs"`
	Fail    string `json:"fail,omitempty"`
	// Big, if set, is the size of the result: a string of that many x.
	Big int `json:"big,omitempty"`
}

// jobResult is what work returns.
type jobResult struct {
	N    int    `json:"n"`
	Task string `json:"task"`
}

// work is the test worker's handler: it holds the task for its sleep, then
// fails with its fail text or returns its number and the task's id.
func work(_ context.Context, t *worker.Task) (any, error) {
	var j job
	if err := t.Decode(&j); err != nil {
		return nil, err
	}
	time.Sleep(time.Duration(j.SleepMS) * time.Millisecond)
	if j.Fail != "" {
		return nil, errors.New(j.Fail)
	}
	if j.Big > 0 {
		return strings.Repeat("x", j.Big), nil
	}
	return jobResult{N: j.N, Task: t.ID}, nil
}

func bootstrap() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	return cmd
}

func randName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// rig is a scheduler over the memory store whose push pool "p" delivers to
// one target, with the results queue's consumer running.
type rig struct {
	// counter counts the AWS calls of the Pusher and the results queue's
	// consumer.
	counter *awsstore.RequestCounter
	sched   *core.Scheduler
	pusher  *push.Pusher
	sqs     *sqs.Client
	results string
	ctx     context.Context
}

// newSQS returns an SQS client of moto's, counted by counter when set.
func newSQS(t *testing.T, counter *awsstore.RequestCounter) *sqs.Client {
	cfg := moto.Config()
	cfg.Retryer = func() aws.Retryer { return awsstore.NewRetryer(0) }
	if counter != nil {
		counter.Register(&cfg)
	}
	return sqs.NewFromConfig(cfg)
}

func createQueue(t *testing.T, c *sqs.Client, name string) string {
	t.Helper()
	in := &sqs.CreateQueueInput{QueueName: aws.String(name)}
	if strings.HasSuffix(name, ".fifo") {
		in.Attributes = map[string]string{string(sqstypes.QueueAttributeNameFifoQueue): "true"}
	}
	out, err := c.CreateQueue(context.Background(), in)
	require.NoError(t, err)
	return aws.ToString(out.QueueUrl)
}

// newRig starts the rig: capacity slots for pool p, tg its target, the
// results queue (standard, as Lambda's destinations require) consumed.
func newRig(t *testing.T, capacity int, tg push.Target, clients push.AWSClients, results string, counter *awsstore.RequestCounter) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed bound
	t.Cleanup(cancel)
	if counter == nil {
		counter = &awsstore.RequestCounter{}
	}
	r := &rig{counter: counter, sqs: newSQS(t, counter), results: results, ctx: ctx}
	if clients.SQS == nil {
		clients.SQS = r.sqs
	}
	p, err := push.New(push.Options{
		Targets: map[string]push.Target{"p": tg}, AWS: clients,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{}), Pusher: p})
	require.NoError(t, err)
	p.Bind(s)
	r.sched, r.pusher = s, p
	require.NoError(t, s.PutPool(ctx, core.PoolConfig{
		Name: "p", Capacity: capacity, MaxParked: 1000, DefaultMaxWait: 10 * time.Minute,
		RunTimeout: 2 * time.Minute, Executor: core.ExecutorPush,
	}))
	cctx, stop := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		_ = p.ConsumeResults(cctx, r.sqs, results, push.ConsumeOptions{
			Wait:    time.Second,
			OnError: func(err error) { t.Logf("results queue: %v", err) },
		})
	}()
	t.Cleanup(func() {
		stop()
		<-consumed
		p.Close()
	})
	return r
}

// submit submits n tasks of acme to p, job(i) the payload of the i-th.
func (r *rig) submit(t *testing.T, n int, payload func(i int) job) []core.Task {
	t.Helper()
	out := make([]core.Task, n)
	for i := range n {
		body, err := json.Marshal(payload(i))
		require.NoError(t, err)
		res, err := r.sched.Submit(r.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Payload: body})
		require.NoError(t, err)
		out[i] = res.Task
	}
	return out
}

// outcomes reads acme's mailbox until each of tasks has an outcome and
// returns the outcomes by task id; it fails if a task has more than one.
func (r *rig) outcomes(t *testing.T, tasks []core.Task) map[string]core.Message {
	t.Helper()
	want := map[string]bool{}
	for _, tk := range tasks {
		want[tk.ID] = true
	}
	got := map[string]core.Message{}
	var after core.Cursor
	for len(got) < len(want) {
		page, err := r.sched.Mailbox(r.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme", After: after, Wait: 5 * time.Second})
		require.NoError(t, err, "waiting for outcomes: %d of %d", len(got), len(want))
		for _, m := range page.Messages {
			if m.Type == core.MessageStarted || !want[m.TaskID] {
				continue
			}
			_, dup := got[m.TaskID]
			require.False(t, dup, "task %s has a second outcome: %s", m.TaskID, m.Type)
			got[m.TaskID] = m
		}
		after = page.Next
	}
	return got
}

// lambdaRig starts an emulator of the function "worker" with environments
// (more than the pool's capacity, so that an over-capacity push would run),
// and a rig whose target invokes target through it; sdkAttempts bounds the
// SDK's own attempts of one Invoke (0: awsstore's retryer, as in
// production).
func lambdaRig(t *testing.T, capacity, environments int, target string, maxAttempts, sdkAttempts int) (*rig, *lambdaemu.Emulator) {
	t.Helper()
	c := newSQS(t, nil)
	results := createQueue(t, c, randName("results-"))
	emu := lambdaemu.Start(t, lambdaemu.Options{
		SQS: c,
		Functions: []lambdaemu.Function{{
			Name: "worker", Bootstrap: bootstrap, Environments: environments, Retries: 2,
			OnSuccess: results, OnFailure: results,
		}},
	})
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	cfg := moto.Config()
	cfg.HTTPClient = hc
	cfg.Retryer = func() aws.Retryer { return awsstore.NewRetryer(sdkAttempts) }
	counter := &awsstore.RequestCounter{}
	counter.Register(&cfg)
	lc := awslambda.NewFromConfig(cfg, func(o *awslambda.Options) { o.BaseEndpoint = aws.String(emu.URL) })
	r := newRig(t, capacity, push.Target{Type: push.TypeLambda, Function: target, MaxAttempts: maxAttempts}, push.AWSClients{Lambda: lc}, results, counter)
	return r, emu
}

// TestLambdaTarget: every start of a push pool is an asynchronous Invoke of
// a real aws-lambda-go worker (worker.LambdaHandler) in lambdaemu, whose
// destination record on the results queue completes the task with the
// function's result. Counted at the emulator: never more invocations at
// once than the pool's capacity, one invocation and one record per task.
func TestLambdaTarget(t *testing.T) {
	t.Parallel()
	const n, capacity = 30, 3
	r, emu := lambdaRig(t, capacity, 2*capacity, "worker", 0, 0)
	tasks := r.submit(t, n, func(i int) job { return job{N: i, SleepMS: 10 + i%4*10} })
	got := r.outcomes(t, tasks)
	for i, tk := range tasks {
		m := got[tk.ID]
		require.Equal(t, core.MessageType(core.StateSucceeded), m.Type, "task %d: %s", i, m.Error)
		var res jobResult
		require.NoError(t, json.Unmarshal(m.Result, &res), "task %d: result %s", i, m.Result)
		require.Equal(t, jobResult{N: i, Task: tk.ID}, res)
	}
	st := emu.Stats("worker")
	t.Logf("emulator: %+v", st)
	logPerTask(t, r.counter, n)
	require.Equal(t, n, r.counter.Snapshot()["Lambda.Invoke"].Attempts, "one Invoke request per task")
	require.LessOrEqual(t, st.MaxConcurrent, capacity, "invocations at once, counted at the emulator")
	require.Positive(t, st.MaxConcurrent)
	require.Equal(t, n, st.InvokeCalls, "one Invoke per task")
	require.Equal(t, n, st.Runs, "one invocation per task")
	require.Equal(t, map[string]int{"Success": n}, st.Records)
	ps, err := r.sched.Pool(r.ctx, "p")
	require.NoError(t, err)
	require.Zero(t, ps.Running)
}

// TestLambdaTargetFunctionError: a function that fails is retried by Lambda
// (twice), then its record (RetriesExhausted) fails the task with the
// function's error.
func TestLambdaTargetFunctionError(t *testing.T) {
	t.Parallel()
	r, emu := lambdaRig(t, 2, 3, "worker", 0, 0)
	tasks := r.submit(t, 3, func(i int) job { return job{N: i, Fail: fmt.Sprintf("boom %d", i)} })
	got := r.outcomes(t, tasks)
	for i, tk := range tasks {
		m := got[tk.ID]
		require.Equal(t, core.MessageType(core.StateFailed), m.Type)
		require.Equal(t, fmt.Sprintf("errorString: boom %d", i), m.Error)
		require.Empty(t, m.Result)
	}
	st := emu.Stats("worker")
	require.Equal(t, 9, st.Runs, "each event run three times: Lambda's two retries")
	require.Equal(t, 9, st.Errors)
	require.Equal(t, map[string]int{"RetriesExhausted": 3}, st.Records)
	require.LessOrEqual(t, st.MaxConcurrent, 2)
}

// TestLambdaTargetResultTooLarge: a function's result over
// core.MaxResultBytes cannot complete its task as succeeded: the task fails
// with the reason, rather than running until its lease ends.
func TestLambdaTargetResultTooLarge(t *testing.T) {
	t.Parallel()
	r, emu := lambdaRig(t, 1, 1, "worker", 0, 0)
	tasks := r.submit(t, 1, func(int) job { return job{Big: core.MaxResultBytes + 1000} })
	m := r.outcomes(t, tasks)[tasks[0].ID]
	require.Equal(t, core.MessageType(core.StateFailed), m.Type)
	require.Contains(t, m.Error, "the outcome could not be recorded")
	require.Contains(t, m.Error, fmt.Sprint(core.MaxResultBytes))
	require.Equal(t, map[string]int{"Success": 1}, emu.Stats("worker").Records)
}

// TestLambdaTargetThrottled: Invoke answered 429 TooManyRequestsException
// is retried by the Pusher (the SDK's own retries off) while the task keeps
// its slot, and then succeeds.
func TestLambdaTargetThrottled(t *testing.T) {
	t.Parallel()
	r, emu := lambdaRig(t, 1, 2, "worker", 5, 1)
	emu.Throttle("worker", 2)
	tasks := r.submit(t, 1, func(i int) job { return job{N: 7} })
	got := r.outcomes(t, tasks)
	m := got[tasks[0].ID]
	require.Equal(t, core.MessageType(core.StateSucceeded), m.Type, m.Error)
	st := emu.Stats("worker")
	require.Equal(t, 3, st.InvokeCalls)
	require.Equal(t, 2, st.Throttled)
	require.Equal(t, 1, st.Runs)
	stored, err := r.sched.Backend().Task(r.ctx, tasks[0].ID)
	require.NoError(t, err)
	require.Equal(t, 2, stored.PushAttempts, "two failed attempts recorded before the third was accepted")
}

// TestLambdaTargetUnknownFunction: Invoke of a function that does not exist
// (404 ResourceNotFoundException) fails the task at once with push_failed.
func TestLambdaTargetUnknownFunction(t *testing.T) {
	t.Parallel()
	r, emu := lambdaRig(t, 1, 1, "no-such-function", 5, 0)
	tasks := r.submit(t, 2, func(i int) job { return job{N: i} })
	got := r.outcomes(t, tasks)
	for _, tk := range tasks {
		m := got[tk.ID]
		require.Equal(t, core.MessageType(core.StateFailed), m.Type)
		require.True(t, strings.HasPrefix(m.Error, core.PushFailedCode+": "), m.Error)
		require.Contains(t, m.Error, "ResourceNotFoundException")
		stored, err := r.sched.Backend().Task(r.ctx, tk.ID)
		require.NoError(t, err)
		require.Equal(t, 1, stored.PushAttempts, "failed at the first attempt")
	}
	require.Zero(t, emu.Stats("worker").Runs)
}

// TestSQSTarget: every start lands in the user's queue on moto (standard and
// FIFO); a worker receives them, runs each, and completes half through core
// with the lease and half by sending an api.PushOutcome to the results
// queue. Counted at the worker: never more tasks held at once than the
// pool's capacity, one delivery and one outcome per task.
func TestSQSTarget(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"standard", "fifo"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			const n, capacity = 30, 4
			c := newSQS(t, nil)
			results := createQueue(t, c, randName("results-"))
			name := randName("work-")
			if kind == "fifo" {
				name += ".fifo"
			}
			queue := createQueue(t, c, name)
			r := newRig(t, capacity, push.Target{Type: push.TypeSQS, QueueURL: queue}, push.AWSClients{}, results, nil)
			tasks := r.submit(t, n, func(i int) job { return job{N: i, SleepMS: 5 + i%3*10} })

			obs := &observer{deliveries: map[string]int{}}
			wctx, stop := context.WithCancel(r.ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				sqsWorker(wctx, t, r, c, queue, obs)
			}()
			got := r.outcomes(t, tasks)
			stop()
			<-done
			for i, tk := range tasks {
				m := got[tk.ID]
				require.Equal(t, core.MessageType(core.StateSucceeded), m.Type, "task %d: %s", i, m.Error)
				var res jobResult
				require.NoError(t, json.Unmarshal(m.Result, &res))
				require.Equal(t, jobResult{N: i, Task: tk.ID}, res)
			}
			logPerTask(t, r.counter, n)
			require.Equal(t, n, r.counter.Snapshot()["SQS.SendMessage"].Attempts, "one SendMessage per task")
			obs.mu.Lock()
			defer obs.mu.Unlock()
			t.Logf("worker: max held at once %d, via results queue %d of %d", obs.max, obs.viaQueue, n)
			require.LessOrEqual(t, obs.max, capacity, "tasks held at once, counted at the worker")
			require.Positive(t, obs.max)
			require.Len(t, obs.deliveries, n)
			for id, k := range obs.deliveries {
				require.Equal(t, 1, k, "deliveries of %s", id)
			}
			require.Positive(t, obs.viaQueue)
			require.Less(t, obs.viaQueue, n)
		})
	}
}

// logPerTask logs the AWS requests counter saw, per task of n.
func logPerTask(t *testing.T, counter *awsstore.RequestCounter, n int) {
	var b strings.Builder
	for op, c := range counter.Snapshot() {
		fmt.Fprintf(&b, " %s %.2f", op, float64(c.Attempts)/float64(n))
	}
	t.Logf("AWS requests per task of the Pusher and the results consumer:%s", b.String())
}

// observer counts, at the worker, the tasks it holds.
type observer struct {
	mu         sync.Mutex
	held, max  int
	viaQueue   int
	deliveries map[string]int
}

// sqsWorker receives starts from queue until ctx ends and runs each on a
// goroutine of its own: a task is held from its receipt until its outcome
// is sent, even-numbered tasks completed through core, odd ones through
// the results queue.
func sqsWorker(ctx context.Context, t *testing.T, r *rig, c *sqs.Client, queue string, obs *observer) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 300,
		})
		if err != nil {
			continue
		}
		for _, m := range out.Messages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := handleStart(r, c, queue, m, obs); err != nil {
					t.Errorf("worker: %v", err)
				}
			}()
		}
	}
}

func handleStart(r *rig, c *sqs.Client, queue string, m sqstypes.Message, obs *observer) error {
	var pt api.PushedTask
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &pt); err != nil {
		return err
	}
	obs.mu.Lock()
	obs.held++
	obs.max = max(obs.max, obs.held)
	obs.deliveries[pt.ID]++
	obs.mu.Unlock()
	var j job
	if err := json.Unmarshal(pt.Payload, &j); err != nil {
		return err
	}
	time.Sleep(time.Duration(j.SleepMS) * time.Millisecond)
	result, _ := json.Marshal(jobResult{N: j.N, Task: pt.ID})
	viaQueue := j.N%2 == 1
	obs.mu.Lock()
	obs.held-- // before the outcome, which frees the slot
	if viaQueue {
		obs.viaQueue++
	}
	obs.mu.Unlock()
	ctx := context.WithoutCancel(r.ctx)
	if viaQueue {
		body, _ := json.Marshal(api.PushOutcome{TaskID: pt.ID, Lease: pt.Lease, Status: "succeeded", Result: result})
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(r.results), MessageBody: aws.String(string(body))}); err != nil {
			return err
		}
	} else if _, err := r.sched.Complete(ctx, core.CompleteRequest{
		Tenant: pt.Tenant, TaskID: pt.ID, Lease: pt.Lease, Status: core.StateSucceeded, Result: result,
	}); err != nil {
		return err
	}
	_, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queue), ReceiptHandle: m.ReceiptHandle})
	return err
}
