package lambda

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaemu"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/worker"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

// workerEnv, set, makes the test binary a Lambda function's bootstrap: the
// worker of the lambda target's test, under lambdaemu's Runtime API.
const workerEnv = "PARKINGLOT_LAMBDA_TEST_WORKER"

// job is the payload of a push test's task.
type job struct {
	N       int    `json:"n"`
	SleepMS int    `json:"sleepMs"`
	Fail    string `json:"fail,omitempty"`
	// Status, if set, is the HTTP target's answer to the task's first
	// request (503: retried; 4xx: for good).
	Status int `json:"status,omitempty"`
}

// jobResult is a push test's result.
type jobResult struct {
	N    int    `json:"n"`
	Task string `json:"task"`
}

// work runs a job: it holds the task for its sleep, then fails with its
// fail text or returns its number and the task's id.
func work(_ context.Context, t *worker.Task) (any, error) {
	var j job
	if err := t.Decode(&j); err != nil {
		return nil, err
	}
	time.Sleep(time.Duration(j.SleepMS) * time.Millisecond)
	if j.Fail != "" {
		return nil, errors.New(j.Fail)
	}
	return jobResult{N: j.N, Task: t.ID}, nil
}

// pushConfig is a lambda-runtime configuration over moto with one push
// pool, p, of capacity, whose target is the YAML flow mapping target.
func pushConfig(capacity int, target, resultsQueue string) string {
	c := config(nil)
	c = strings.Replace(c, "pools:\n", "", 1)
	if resultsQueue != "" {
		c += fmt.Sprintf("resultsQueue: %q\n", resultsQueue)
	}
	return c + fmt.Sprintf("pools:\n  - {name: p, capacity: %d, maxParked: 1000, defaultMaxWait: 10m, runTimeout: 2m, executor: push, target: %s}\n", capacity, target)
}

// submitJobs submits n jobs of acme to pool p through the API, eight at a
// time (in the Lambda runtime a submission that starts a task waits for
// its delivery: to a sync target, for the target's answer).
func submitJobs(ctx context.Context, t *testing.T, c *client.Client, n int, payload func(i int) job) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body, err := json.Marshal(payload(i))
				if err == nil {
					var res client.SubmitResult
					res, err = c.Submit(ctx, "p", api.SubmitRequest{Payload: body})
					ids[i] = res.Task.ID
				}
				errs[i] = err
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return ids
}

// outcomesOf reads acme's mailbox until each of ids has an outcome and
// returns them by task id; a second outcome of a task fails the test.
func outcomesOf(ctx context.Context, t *testing.T, c *client.Client, ids []string) map[string]api.Message {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]api.Message{}
	after := ""
	for len(got) < len(want) {
		page, err := c.Mailbox(ctx, "acme", client.MailboxOptions{After: after, Wait: 5 * time.Second})
		require.NoError(t, err, "waiting for outcomes: %d of %d", len(got), len(want))
		for _, m := range page.Messages {
			if m.Type == "started" || !want[m.TaskID] {
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

// TestPushHTTP: through the Lambda runtime on moto, a push pool's starts
// are POSTed, signed, to a loopback target in sync mode, whose answers
// complete the tasks. A 503 is retried by the sweep (the functions'
// Pushers keep no timers), a 422 fails its task at once with push_failed.
// Counted at the target: never more requests at once than the pool's
// capacity, one request per task and attempt, one outcome per task.
func TestPushHTTP(t *testing.T) {
	t.Parallel()
	const n, capacity, secret, refused = 20, 3, "hook-secret", 3
	flaky := func(i int) bool { return i%5 == 1 }
	var mu sync.Mutex
	inFlight, maxInFlight, badSignatures := 0, 0, 0
	requests := map[string][]int{} // the attempts each task's requests said they were
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := api.VerifySignature([]byte(secret), r.Header.Get(api.SignatureHeader), body, time.Now()); err != nil {
			mu.Lock()
			badSignatures++
			mu.Unlock()
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var pt api.PushedTask
		var j job
		if json.Unmarshal(body, &pt) != nil || json.Unmarshal(pt.Payload, &j) != nil {
			http.Error(w, "not a pushed task", http.StatusBadRequest)
			return
		}
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		requests[pt.ID] = append(requests[pt.ID], pt.Attempt)
		mu.Unlock()
		time.Sleep(time.Duration(j.SleepMS) * time.Millisecond)
		if j.Status != 0 && pt.Attempt == 1 {
			mu.Lock()
			inFlight--
			mu.Unlock()
			http.Error(w, "not now", j.Status)
			return
		}
		result, _ := json.Marshal(jobResult{N: j.N, Task: pt.ID})
		answer, _ := json.Marshal(api.PushOutcome{Status: "succeeded", Result: result})
		mu.Lock()
		inFlight-- // before the answer, which frees the slot
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	t.Cleanup(target.Close)

	srv := testserver.StartEnv(t, bin, pushConfig(capacity, fmt.Sprintf("{type: http, url: %q, secretEnv: HOOK_SECRET, mode: sync}", target.URL), ""),
		"HOOK_SECRET="+secret)
	acme, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	t.Cleanup(acme.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed bound
	defer cancel()

	ids := submitJobs(ctx, t, acme, n, func(i int) job {
		j := job{N: i, SleepMS: 200 + i%3*100}
		switch {
		case i == refused:
			j.Status = http.StatusUnprocessableEntity
		case flaky(i):
			j.Status = http.StatusServiceUnavailable
		}
		return j
	})
	got := outcomesOf(ctx, t, acme, ids)
	mu.Lock()
	defer mu.Unlock()
	for i, id := range ids {
		m := got[id]
		if i == refused {
			require.Equal(t, "failed", m.Type)
			require.True(t, strings.HasPrefix(m.Error, "push_failed: "), m.Error)
			require.Contains(t, m.Error, "422")
			require.Equal(t, []int{1}, requests[id], "a 4xx is not retried")
			continue
		}
		require.Equal(t, "succeeded", m.Type, "task %d: %s", i, m.Error)
		var res jobResult
		require.NoError(t, json.Unmarshal(m.Result, &res))
		require.Equal(t, jobResult{N: i, Task: id}, res)
		if flaky(i) {
			require.Equal(t, []int{1, 2}, requests[id], "a 503 is retried once, as attempt 2")
		} else {
			require.Equal(t, []int{1}, requests[id])
		}
	}
	t.Logf("target: max requests at once %d", maxInFlight)
	require.Zero(t, badSignatures)
	require.LessOrEqual(t, maxInFlight, capacity, "requests at once, counted at the target")
	require.Positive(t, maxInFlight)
	require.Len(t, requests, n)
	pool, err := acme.Pool(ctx, "p")
	require.NoError(t, err)
	require.Zero(t, pool.Running)
	require.Equal(t, 0, srv.Stop(t, 30*time.Second))
}

// TestPushLambda: through the Lambda runtime on moto, a push pool's starts
// are asynchronous Invokes of a real aws-lambda-go worker in lambdaemu
// (the runtime's Lambda client pointed at it by AWS_ENDPOINT_URL_LAMBDA);
// the function's destination records reach the results queue on moto, which
// the runtime hands to dispatch as its SQS event source would. Counted at
// the emulator: never more invocations at once than the capacity, one
// Invoke per task, Lambda's retries of the failing ones.
func TestPushLambda(t *testing.T) {
	t.Parallel()
	for _, runtime := range []string{"lambda", "native"} {
		t.Run(runtime, func(t *testing.T) {
			t.Parallel()
			testPushLambda(t, runtime)
		})
	}
}

// testPushLambda runs TestPushLambda's load in runtime lambda (the results
// queue handed to dispatch as its event source would) or native (the
// server's Pusher consumes it).
func testPushLambda(t *testing.T, runtime string) {
	const n, capacity, failing = 20, 3, 2
	c := sqs.NewFromConfig(moto.Config())
	q, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("results-" + strings.ReplaceAll(t.Name(), "/", "-") + fmt.Sprint(time.Now().UnixNano()))})
	require.NoError(t, err)
	results := aws.ToString(q.QueueUrl)
	emu := lambdaemu.Start(t, lambdaemu.Options{
		SQS: c,
		Functions: []lambdaemu.Function{{
			Name: "worker", Environments: 2 * capacity, Retries: 2, OnSuccess: results, OnFailure: results,
			Bootstrap: func() *exec.Cmd {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), workerEnv+"=1")
				return cmd
			},
		}},
	})
	cfg := pushConfig(capacity, "{type: lambda, function: worker}", results)
	cfg = strings.Replace(cfg, "runtime: lambda\n", "runtime: "+runtime+"\n", 1)
	srv := testserver.StartEnv(t, bin, cfg, "AWS_ENDPOINT_URL_LAMBDA="+emu.URL)
	require.Contains(t, srv.Log(), `"runtime":"`+runtime+`"`)
	acme, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	t.Cleanup(acme.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed bound
	defer cancel()

	ids := submitJobs(ctx, t, acme, n, func(i int) job {
		j := job{N: i, SleepMS: 200 + i%3*100}
		if i < failing {
			j.Fail = fmt.Sprintf("boom %d", i)
		}
		return j
	})
	got := outcomesOf(ctx, t, acme, ids)
	for i, id := range ids {
		m := got[id]
		if i < failing {
			require.Equal(t, "failed", m.Type)
			require.Equal(t, fmt.Sprintf("errorString: boom %d", i), m.Error)
			continue
		}
		require.Equal(t, "succeeded", m.Type, "task %d: %s", i, m.Error)
		var res jobResult
		require.NoError(t, json.Unmarshal(m.Result, &res))
		require.Equal(t, jobResult{N: i, Task: id}, res)
	}
	st := emu.Stats("worker")
	t.Logf("emulator: %+v", st)
	require.LessOrEqual(t, st.MaxConcurrent, capacity, "invocations at once, counted at the emulator")
	require.Positive(t, st.MaxConcurrent)
	require.Equal(t, n, st.InvokeCalls, "one Invoke per task")
	require.Equal(t, n+2*failing, st.Runs, "one run per task, and Lambda's two retries of a failing one")
	require.Equal(t, map[string]int{"Success": n - failing, "RetriesExhausted": failing}, st.Records)
	pool, err := acme.Pool(ctx, "p")
	require.NoError(t, err)
	require.Zero(t, pool.Running)
	require.Equal(t, 0, srv.Stop(t, 30*time.Second))
}

// TestFunctionBinariesPush runs the real submit, dispatch and mailbox
// bootstraps, configured by their environment alone, with a push pool whose
// target is a function in lambdaemu: submit's invocation returns only once
// its start was delivered (one Invoke, counted at the emulator), the
// destination record lands in the results queue on moto, and dispatch,
// given it as its SQS event source would, completes the task, which
// mailbox's event reads back. Another push pool's HTTP target is signed
// with the secret submit read from Secrets Manager on moto (secretArn).
func TestFunctionBinariesPush(t *testing.T) {
	t.Parallel()
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := hex.EncodeToString(r[:])
	c := sqs.NewFromConfig(moto.Config())
	q, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("results-" + name)})
	require.NoError(t, err)
	results := aws.ToString(q.QueueUrl)
	emu := lambdaemu.Start(t, lambdaemu.Options{
		SQS: c,
		Functions: []lambdaemu.Function{{
			Name: "worker", Environments: 1, Retries: 2, OnSuccess: results, OnFailure: results,
			Bootstrap: func() *exec.Cmd {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), workerEnv+"=1")
				return cmd
			},
		}},
	})
	const secret = "hook-secret"
	sec, err := secretsmanager.NewFromConfig(moto.Config()).CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String("hook-" + name), SecretString: aws.String(secret),
	})
	require.NoError(t, err)
	signed := make(chan error, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		signed <- api.VerifySignature([]byte(secret), r.Header.Get(api.SignatureHeader), body, time.Now())
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(hook.Close)
	env := []string{
		"AWS_REGION=us-east-1", "AWS_ENDPOINT_URL=" + moto.Endpoint, "AWS_ENDPOINT_URL_LAMBDA=" + emu.URL,
		"PARKINGLOT_TABLE=parkinglot-" + name, "PARKINGLOT_QUEUE_PREFIX=pl" + name + "-",
		fmt.Sprintf(`PARKINGLOT_TARGETS={"gpu":{"type":"lambda","function":"worker"},`+
			`"hook":{"type":"http","url":%q,"mode":"async","secretArn":%q}}`, hook.URL, aws.ToString(sec.ARN)),
	}
	applyPools(t, "parkinglot-"+name, "pl"+name+"-",
		core.PoolConfig{Name: "gpu", Capacity: 1, MaxParked: 5, DefaultMaxWait: time.Minute, RunTimeout: time.Minute, Executor: core.ExecutorPush},
		core.PoolConfig{Name: "hook", Capacity: 1, MaxParked: 5, DefaultMaxWait: 10 * time.Minute, RunTimeout: 5 * time.Minute, Executor: core.ExecutorPush})
	apis := map[string]*runtimeAPI{}
	for _, fn := range []string{"submit", "dispatch", "mailbox"} {
		apis[fn] = newRuntimeAPI(t)
		startFunction(t, fn, apis[fn], env)
	}

	a := apis["submit"].invoke(t, fixture(t, "apigw-v2-submit.json"))
	require.True(t, a.ok, "submit failed: %s", a.body)
	var res events.APIGatewayV2HTTPResponse
	require.NoError(t, json.Unmarshal(a.body, &res))
	require.Equal(t, http.StatusCreated, res.StatusCode, res.Body)
	var sub struct {
		Task struct{ ID, State string }
	}
	require.NoError(t, json.Unmarshal([]byte(res.Body), &sub))
	require.Equal(t, "running", sub.Task.State)
	require.Equal(t, 1, emu.Stats("worker").Queued, "the start was delivered before submit's invocation returned")

	a = apis["submit"].invoke(t, bytes.ReplaceAll(fixture(t, "apigw-v2-submit.json"), []byte("gpu"), []byte("hook")))
	require.True(t, a.ok, "submit failed: %s", a.body)
	require.NoError(t, json.Unmarshal(a.body, &res))
	require.Equal(t, http.StatusCreated, res.StatusCode, res.Body)
	select {
	case err := <-signed:
		require.NoError(t, err, "signed with the secret from Secrets Manager")
	default:
		t.Fatal("submit's invocation returned before its push to the HTTP target")
	}

	// The event source mapping's part: a batch of the results queue to
	// dispatch, the messages it does not report deleted.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard, not a speed bound
	defer cancel()
	var msgs []sqstypes.Message
	for len(msgs) == 0 {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(results), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		require.NoError(t, err, "waiting for the destination record")
		msgs = out.Messages
	}
	require.Len(t, msgs, 1)
	ev := events.SQSEvent{Records: []events.SQSMessage{{
		MessageId: aws.ToString(msgs[0].MessageId), ReceiptHandle: aws.ToString(msgs[0].ReceiptHandle), Body: aws.ToString(msgs[0].Body),
		EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:results-" + name, AWSRegion: "us-east-1",
	}}}
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	a = apis["dispatch"].invoke(t, payload)
	require.True(t, a.ok, "dispatch failed: %s", a.body)
	var batch events.SQSEventResponse
	require.NoError(t, json.Unmarshal(a.body, &batch))
	require.Empty(t, batch.BatchItemFailures)

	a = apis["mailbox"].invoke(t, fixture(t, "apigw-v2-mailbox.json"))
	require.True(t, a.ok, "mailbox failed: %s", a.body)
	require.NoError(t, json.Unmarshal(a.body, &res))
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	var page api.MailboxPage
	require.NoError(t, json.Unmarshal([]byte(res.Body), &page))
	var types []string
	for _, m := range page.Messages {
		if m.TaskID == sub.Task.ID {
			types = append(types, m.Type)
			if m.Type == "succeeded" {
				require.JSONEq(t, fmt.Sprintf(`{"n":0,"task":%q}`, sub.Task.ID), string(m.Result))
			}
		}
	}
	require.Equal(t, []string{"started", "succeeded"}, types)
	st := emu.Stats("worker")
	require.Equal(t, 1, st.InvokeCalls)
	require.Equal(t, 1, st.Runs)
}
