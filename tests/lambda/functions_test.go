package lambda

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"
)

// runtimeAPI is the Lambda Runtime API that the functions' bootstrap talks
// to (AWS_LAMBDA_RUNTIME_API), serving a queue of invocations and
// recording the answers.
type runtimeAPI struct {
	srv     *httptest.Server
	pending chan invocation
	mu      sync.Mutex
	answers map[string]chan answer
	done    chan struct{}
}

type invocation struct {
	id      string
	payload []byte
}

type answer struct {
	ok   bool // response, not error
	body []byte
}

func newRuntimeAPI(t *testing.T) *runtimeAPI {
	t.Helper()
	r := &runtimeAPI{pending: make(chan invocation, 8), answers: map[string]chan answer{}, done: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		close(r.done)
		r.srv.Close()
	})
	return r
}

func (r *runtimeAPI) serve(w http.ResponseWriter, req *http.Request) {
	const prefix = "/2018-06-01/runtime/"
	path := strings.TrimPrefix(req.URL.Path, prefix)
	switch {
	case req.Method == http.MethodGet && path == "invocation/next":
		select {
		case inv := <-r.pending:
			h := w.Header()
			h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
			h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
			h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:test")
			h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(inv.payload)
		case <-r.done:
			w.WriteHeader(http.StatusServiceUnavailable)
		case <-req.Context().Done():
		}
	case req.Method == http.MethodPost && strings.HasPrefix(path, "invocation/"):
		rest := strings.TrimPrefix(path, "invocation/")
		id, kind, _ := strings.Cut(rest, "/")
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		ch := r.answers[id]
		r.mu.Unlock()
		if ch != nil {
			ch <- answer{ok: kind == "response", body: body}
		}
		w.WriteHeader(http.StatusAccepted)
	case req.Method == http.MethodPost && path == "init/error":
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		for _, ch := range r.answers {
			select {
			case ch <- answer{body: body}:
			default:
			}
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, req)
	}
}

// invoke queues payload and waits for the function's answer.
func (r *runtimeAPI) invoke(t *testing.T, payload []byte) answer {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ch := make(chan answer, 1)
	r.mu.Lock()
	r.answers[id] = ch
	r.mu.Unlock()
	r.pending <- invocation{id: id, payload: payload}
	select {
	case a := <-ch:
		return a
	case <-time.After(60 * time.Second):
		t.Fatalf("no answer to invocation %s", id)
		return answer{}
	}
}

// startFunction builds ./functions/name as the Lambda bootstrap for this
// machine and starts it against api with env.
func startFunction(t *testing.T, name string, api *runtimeAPI, env []string) {
	t.Helper()
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bootstrap, "github.com/parkinglot/parkinglot/functions/"+name)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	cmd := exec.Command(bootstrap)
	cmd.Env = append(append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(api.srv.URL, "http://"),
		"AWS_LAMBDA_FUNCTION_NAME=parkinglot-"+name, "AWS_LAMBDA_LOG_FORMAT=JSON"), env...)
	var logs strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	})
	cmd.Stdout, cmd.Stderr = w, w
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			mu.Lock()
			t.Logf("%s output:\n%s", name, logs.String())
			mu.Unlock()
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "internal", "lambdaapi", "testdata", name))
	require.NoError(t, err)
	return data
}

// TestFunctionBinaries runs the real submit, mailbox and expire bootstraps
// under a Lambda Runtime API, over DynamoDB + SQS on moto, configured by
// their environment alone: a submission through submit's API Gateway event
// is read back through mailbox's, and expire sweeps on a scheduled event.
func TestFunctionBinaries(t *testing.T) {
	t.Parallel()
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := hex.EncodeToString(r[:])
	env := []string{
		"AWS_REGION=us-east-1", "AWS_ENDPOINT_URL=" + moto.Endpoint, "PARKINGLOT_TABLE=parkinglot-" + name,
		"PARKINGLOT_QUEUE_PREFIX=pl" + name + "-", "PARKINGLOT_CREATE_RESOURCES=true",
		`PARKINGLOT_POOLS=[{"name":"gpu","capacity":1,"maxParked":5,"defaultMaxWait":"1m","runTimeout":"1m"}]`,
	}
	apis := map[string]*runtimeAPI{}
	for _, fn := range []string{"submit", "mailbox", "expire"} {
		apis[fn] = newRuntimeAPI(t)
		startFunction(t, fn, apis[fn], env)
	}

	a := apis["submit"].invoke(t, fixture(t, "apigw-v2-submit.json"))
	require.True(t, a.ok, "submit failed: %s", a.body)
	var res events.APIGatewayV2HTTPResponse
	require.NoError(t, json.Unmarshal(a.body, &res))
	require.Equal(t, http.StatusCreated, res.StatusCode, res.Body)
	var sub struct {
		Task struct{ ID, Tenant, State, Lease string }
	}
	require.NoError(t, json.Unmarshal([]byte(res.Body), &sub))
	require.Equal(t, "acme", sub.Task.Tenant)
	require.Equal(t, "running", sub.Task.State)

	a = apis["mailbox"].invoke(t, fixture(t, "apigw-v2-mailbox.json"))
	require.True(t, a.ok, "mailbox failed: %s", a.body)
	require.NoError(t, json.Unmarshal(a.body, &res))
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	require.Contains(t, res.Body, fmt.Sprintf(`"taskId":%q`, sub.Task.ID))
	require.Contains(t, res.Body, fmt.Sprintf(`"lease":%q`, sub.Task.Lease))

	// The wrong function for a route answers 404.
	a = apis["mailbox"].invoke(t, fixture(t, "apigw-v2-submit.json"))
	require.True(t, a.ok)
	require.NoError(t, json.Unmarshal(a.body, &res))
	require.Equal(t, http.StatusNotFound, res.StatusCode, res.Body)

	a = apis["expire"].invoke(t, fixture(t, "eventbridge-scheduled.json"))
	require.True(t, a.ok, "expire failed: %s", a.body)
	a = apis["expire"].invoke(t, fixture(t, "apigw-v2-submit.json"))
	require.False(t, a.ok, "expire refuses an API Gateway event")
	require.Contains(t, string(a.body), "unsupported event")
}
