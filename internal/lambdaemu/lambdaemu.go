// Package lambdaemu emulates, for tests, what AWS Lambda does with an
// asynchronous invocation, since moto's Lambda needs Docker: the Invoke API
// (POST /2015-03-31/functions/{name}/invocations), which queues an event
// (InvocationType Event, 202) or runs it and answers (RequestResponse);
// execution environments, each a process of the function's real bootstrap
// (built with aws-lambda-go) served the Lambda Runtime API, one invocation
// at a time; the retries of a failed asynchronous invocation; and the
// invocation record sent to the function's on-success or on-failure
// destination, an SQS queue (on moto in the tests).
//
// What it emulates, as AWS documents it:
//
//   - Invoke: an unknown function (or a qualifier other than $LATEST) is 404
//     ResourceNotFoundException; a payload that is not JSON is 400
//     InvalidRequestContentException; over 256 KB asynchronous (6 MB
//     synchronous) is 413 RequestTooLargeException; an unknown invocation
//     type is 400 InvalidParameterValueException; Throttle makes the next
//     calls 429 TooManyRequestsException (reason
//     ReservedFunctionConcurrentInvocationLimitExceeded, with Retry-After);
//     DryRun is 204. The error type is in the X-Amzn-ErrorType header and
//     the body is {"Type": "User", "message": ...}, as the SDK reads them.
//   - An asynchronous event waits in the function's queue until an
//     environment is free: concurrency is the number of environments
//     (Function.Environments), which start with the emulator (Lambda starts
//     them on demand), and an event is never throttled once queued.
//   - A function error (the bootstrap's POST .../error) is retried
//     Function.Retries times (Lambda's MaximumRetryAttempts, 0-2, default 2)
//     after RetryDelay, 2×RetryDelay (Lambda: about one and two minutes).
//   - The record: {version "1.0", timestamp, requestContext {requestId,
//     functionArn ...:$LATEST, condition Success | RetriesExhausted,
//     approximateInvokeCount}, requestPayload (the event), responseContext
//     {statusCode 200, executedVersion $LATEST, functionError Unhandled on
//     failure}, responsePayload (the function's response, or its
//     {errorMessage, errorType})}, sent as an SQS message's body.
//
// Not emulated: the function's timeout and memory (the deadline is passed
// to the bootstrap, not enforced), an environment that crashes mid-run (its
// invocation would never end), the maximum event age (EventAgeExceeded),
// the duplicate runs Lambda may make of one event, versions and aliases,
// reserved concurrency as a setting, and EventBridge or SNS destinations.
package lambdaemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Limits of Invoke's payload, as Lambda's.
const (
	MaxAsyncPayload = 256 << 10
	MaxSyncPayload  = 6 << 20
)

// Function is one emulated function.
type Function struct {
	// Name is the function's name; Invoke takes it or its ARN.
	Name string
	// Bootstrap returns the command of one execution environment: the
	// function's bootstrap. The emulator adds AWS_LAMBDA_RUNTIME_API and
	// the function's variables to its Env (os.Environ() when nil).
	Bootstrap func() *exec.Cmd
	// Environments is how many execution environments run the function's
	// invocations, each one at a time. Default: 1.
	Environments int
	// Retries is how many times a failed asynchronous invocation is run
	// again (Lambda's MaximumRetryAttempts, 0-2).
	Retries int
	// RetryDelay is the wait before the first retry, doubled for the
	// second. Default: 10ms.
	RetryDelay time.Duration
	// Timeout is the deadline handed to the bootstrap with each
	// invocation. Default: 30s.
	Timeout time.Duration
	// OnSuccess and OnFailure are the URLs of the SQS queues that receive
	// the records of asynchronous invocations that succeeded and failed
	// (after the retries); empty: no destination.
	OnSuccess, OnFailure string
}

// Options configure an Emulator.
type Options struct {
	Functions []Function
	// SQS sends the records to the destinations; required when a function
	// has one.
	SQS *sqs.Client
	// Region and Account make the functions' ARNs. Defaults: us-east-1,
	// 000000000000.
	Region, Account string
}

// Stats are what happened to one function, counted by the emulator.
type Stats struct {
	// InvokeCalls counts the Invoke requests, Throttled those answered 429.
	InvokeCalls, Throttled int
	// Queued counts the asynchronous events accepted (202).
	Queued int
	// Runs counts the invocations handed to an environment (first runs and
	// retries), Errors those that ended with a function error.
	Runs, Errors int
	// MaxConcurrent is the most invocations running at once.
	MaxConcurrent int
	// Records counts the records sent to a destination, by condition.
	// A record is counted as it is sent: whoever received it sees it here.
	Records map[string]int
}

// Run is one invocation of a function, as its environment ran it.
type Run struct {
	RequestID string
	Payload   []byte
	// Attempt counts the runs of one asynchronous event, from 1.
	Attempt int
	// OK is false for a function error; Response is the response or the
	// error's {errorMessage, errorType}.
	OK       bool
	Response []byte
}

// Emulator is a running Lambda emulator.
type Emulator struct {
	// URL is the Invoke API's base URL: a Lambda client's BaseEndpoint.
	URL string

	o    Options
	srv  *httptest.Server
	fns  map[string]*function
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// function is a Function with its runtime API, environments and counts.
type function struct {
	Function
	arn string
	api *httptest.Server

	pending chan invocation

	mu       sync.Mutex
	answers  map[string]chan answer
	throttle int
	running  int
	stats    Stats
	runs     []Run
}

type invocation struct {
	id      string
	payload []byte
}

type answer struct {
	ok   bool
	body []byte
}

// Start starts an emulator of o's functions, with their environments, and
// stops it when tb ends.
func Start(tb testing.TB, o Options) *Emulator {
	tb.Helper()
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Account == "" {
		o.Account = "000000000000"
	}
	e := &Emulator{o: o, fns: map[string]*function{}}
	e.ctx, e.stop = context.WithCancel(context.Background())
	for _, f := range o.Functions {
		if f.Environments <= 0 {
			f.Environments = 1
		}
		if f.RetryDelay <= 0 {
			f.RetryDelay = 10 * time.Millisecond
		}
		if f.Timeout <= 0 {
			f.Timeout = 30 * time.Second
		}
		if f.Retries < 0 || f.Retries > 2 {
			tb.Fatalf("lambdaemu: %s: Retries must be 0-2, got %d", f.Name, f.Retries)
		}
		if (f.OnSuccess != "" || f.OnFailure != "") && o.SQS == nil {
			tb.Fatalf("lambdaemu: %s has a destination: Options.SQS is required", f.Name)
		}
		fn := &function{
			Function: f,
			arn:      fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", o.Region, o.Account, f.Name),
			pending:  make(chan invocation),
			answers:  map[string]chan answer{},
			stats:    Stats{Records: map[string]int{}},
		}
		fn.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.runtimeAPI(fn, w, r) }))
		e.fns[f.Name] = fn
	}
	e.srv = httptest.NewServer(http.HandlerFunc(e.invoke))
	e.URL = e.srv.URL
	tb.Cleanup(e.close)
	for _, fn := range e.fns {
		for i := range fn.Environments {
			e.startEnvironment(tb, fn, i)
		}
	}
	return e
}

func (e *Emulator) close() {
	e.stop()
	e.srv.Close()
	e.wg.Wait()
	for _, fn := range e.fns {
		fn.api.Close()
	}
}

// startEnvironment starts one process of fn's bootstrap; its output goes to
// tb's log if tb fails.
func (e *Emulator) startEnvironment(tb testing.TB, fn *function, i int) {
	tb.Helper()
	cmd := fn.Bootstrap()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env,
		"AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(fn.api.URL, "http://"),
		"AWS_LAMBDA_FUNCTION_NAME="+fn.Name,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_REGION="+e.o.Region,
	)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("lambdaemu: start %s environment %d: %v", fn.Name, i, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if tb.Failed() {
			tb.Logf("lambdaemu: %s environment %d output:\n%s", fn.Name, i, out.String())
		}
	})
}

// Throttle makes the next n Invoke calls of function name fail with 429
// TooManyRequestsException.
func (e *Emulator) Throttle(name string, n int) {
	fn := e.fns[name]
	fn.mu.Lock()
	fn.throttle += n
	fn.mu.Unlock()
}

// Stats returns function name's counts so far.
func (e *Emulator) Stats(name string) Stats {
	fn := e.fns[name]
	fn.mu.Lock()
	defer fn.mu.Unlock()
	st := fn.stats
	st.Records = make(map[string]int, len(fn.stats.Records))
	for k, v := range fn.stats.Records {
		st.Records[k] = v
	}
	return st
}

// Runs returns function name's invocations so far, in the order they ended.
func (e *Emulator) Runs(name string) []Run {
	fn := e.fns[name]
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return append([]Run(nil), fn.runs...)
}

// invoke serves Lambda's Invoke API.
func (e *Emulator) invoke(w http.ResponseWriter, r *http.Request) {
	const prefix, suffix = "/2015-03-31/functions/", "/invocations"
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, prefix) || !strings.HasSuffix(r.URL.Path, suffix) {
		lambdaError(w, http.StatusNotFound, "UnknownOperationException", "Unknown operation "+r.Method+" "+r.URL.Path)
		return
	}
	name, qualifier := parseFunction(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, prefix), suffix))
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		qualifier = q
	}
	fn, ok := e.fns[name]
	if !ok || qualifier != "" && qualifier != "$LATEST" {
		arn := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", e.o.Region, e.o.Account, name)
		if qualifier != "" {
			arn += ":" + qualifier
		}
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+arn)
		return
	}
	fn.mu.Lock()
	fn.stats.InvokeCalls++
	throttled := fn.throttle > 0
	if throttled {
		fn.throttle--
		fn.stats.Throttled++
	}
	fn.mu.Unlock()
	if throttled {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User", "message": "Rate Exceeded.",
		})
		return
	}
	kind := r.Header.Get("X-Amz-Invocation-Type")
	limit := MaxSyncPayload
	switch kind {
	case "", "RequestResponse":
	case "Event":
		limit = MaxAsyncPayload
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "Unsupported invocation type: "+kind)
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not read the request body")
		return
	}
	if len(payload) > limit {
		lambdaError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", limit))
		return
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json")
		return
	}
	id := newID()
	w.Header().Set("X-Amzn-RequestId", id)
	if kind == "Event" {
		fn.mu.Lock()
		fn.stats.Queued++
		fn.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.runEvent(fn, id, payload)
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	a, ok := e.run(fn, id, payload, 1)
	if !ok {
		lambdaError(w, http.StatusServiceUnavailable, "ServiceException", "The emulator is stopping")
		return
	}
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if !a.ok {
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.body)
}

// parseFunction reads Invoke's FunctionName: a name, a name with a
// qualifier (name:qualifier), a function's ARN or a partial ARN.
func parseFunction(s string) (name, qualifier string) {
	if _, rest, ok := strings.Cut(s, "function:"); ok {
		s = rest
	}
	name, qualifier, _ = strings.Cut(s, ":")
	return name, qualifier
}

// runEvent runs an asynchronous event with Lambda's retries and sends its
// record to the destination.
func (e *Emulator) runEvent(fn *function, requestID string, payload []byte) {
	var a answer
	attempts := 0
	for attempt := 1; attempt <= 1+fn.Retries; attempt++ {
		if attempt > 1 {
			select {
			case <-time.After(fn.RetryDelay * time.Duration(1<<(attempt-2))):
			case <-e.ctx.Done():
				return
			}
		}
		var ok bool
		if a, ok = e.run(fn, requestID, payload, attempt); !ok {
			return
		}
		attempts = attempt
		if a.ok {
			break
		}
	}
	rec := record{Version: "1.0", Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), RequestPayload: payload}
	rec.RequestContext.RequestID = requestID
	rec.RequestContext.FunctionArn = fn.arn + ":$LATEST"
	rec.RequestContext.ApproximateInvokeCount = attempts
	rec.ResponseContext.StatusCode = 200
	rec.ResponseContext.ExecutedVersion = "$LATEST"
	rec.ResponsePayload = a.body
	dest := fn.OnSuccess
	rec.RequestContext.Condition = "Success"
	if !a.ok {
		dest = fn.OnFailure
		rec.RequestContext.Condition = "RetriesExhausted"
		rec.ResponseContext.FunctionError = "Unhandled"
	}
	if len(bytes.TrimSpace(rec.ResponsePayload)) == 0 || !json.Valid(rec.ResponsePayload) {
		rec.ResponsePayload = nil
	}
	if dest == "" {
		return
	}
	body, err := json.Marshal(rec)
	if err != nil {
		panic(err) // the record's fields are all JSON
	}
	// Counted before it is sent, so that whoever receives it sees it
	// counted; uncounted if it could not be sent.
	fn.mu.Lock()
	fn.stats.Records[rec.RequestContext.Condition]++
	fn.mu.Unlock()
	for try := 0; ; try++ {
		_, err := e.o.SQS.SendMessage(e.ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dest), MessageBody: aws.String(string(body))})
		if err == nil {
			return
		}
		if e.ctx.Err() != nil || try == 10 {
			fn.mu.Lock()
			fn.stats.Records[rec.RequestContext.Condition]--
			fn.mu.Unlock()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// record is the invocation record of an asynchronous invocation, as Lambda
// sends it to a destination.
type record struct {
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

// run hands one invocation to a free environment of fn and waits for its
// answer; false when the emulator stopped first.
func (e *Emulator) run(fn *function, requestID string, payload []byte, attempt int) (answer, bool) {
	// A retry keeps the event's request id, as Lambda's do.
	id := requestID
	ch := make(chan answer, 1)
	fn.mu.Lock()
	fn.answers[id] = ch
	fn.mu.Unlock()
	defer func() {
		fn.mu.Lock()
		delete(fn.answers, id)
		fn.mu.Unlock()
	}()
	select {
	case fn.pending <- invocation{id: id, payload: payload}:
	case <-e.ctx.Done():
		return answer{}, false
	}
	select {
	case a := <-ch:
		fn.mu.Lock()
		fn.runs = append(fn.runs, Run{RequestID: requestID, Payload: payload, Attempt: attempt, OK: a.ok, Response: a.body})
		if !a.ok {
			fn.stats.Errors++
		}
		fn.mu.Unlock()
		return a, true
	case <-e.ctx.Done():
		return answer{}, false
	}
}

// runtimeAPI serves the Lambda Runtime API to fn's environments: an
// invocation is running from the moment an environment takes it (GET
// invocation/next) until its answer (POST invocation/{id}/response or
// error).
func (e *Emulator) runtimeAPI(fn *function, w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/2018-06-01/runtime/")
	switch {
	case r.Method == http.MethodGet && path == "invocation/next":
		select {
		case inv := <-fn.pending:
			fn.mu.Lock()
			fn.running++
			fn.stats.Runs++
			fn.stats.MaxConcurrent = max(fn.stats.MaxConcurrent, fn.running)
			fn.mu.Unlock()
			h := w.Header()
			h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
			h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(fn.Timeout).UnixMilli(), 10))
			h.Set("Lambda-Runtime-Invoked-Function-Arn", fn.arn)
			h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(inv.payload)
		case <-e.ctx.Done():
			w.WriteHeader(http.StatusServiceUnavailable)
		case <-r.Context().Done():
		}
	case r.Method == http.MethodPost && strings.HasPrefix(path, "invocation/"):
		id, kind, _ := strings.Cut(strings.TrimPrefix(path, "invocation/"), "/")
		body, _ := io.ReadAll(r.Body)
		fn.mu.Lock()
		ch := fn.answers[id]
		if ch != nil {
			fn.running--
		}
		fn.mu.Unlock()
		if ch == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		ch <- answer{ok: kind == "response", body: body}
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost && path == "init/error":
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

// lambdaError writes one of Lambda's error answers.
func lambdaError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("X-Amzn-ErrorType", errType)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Type": "User", "message": msg})
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// syncBuffer is a bytes.Buffer safe for two writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
