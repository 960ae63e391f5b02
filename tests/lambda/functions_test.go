package lambda

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/internal/poolapply"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
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
	// polled is closed on the function's first request for an
	// invocation: its cold start is over.
	polled   chan struct{}
	pollOnce sync.Once
	deadline time.Duration // of each invocation; default 30s
}

type invocation struct {
	id      string
	payload []byte
}

type answer struct {
	ok   bool // response, not error
	body []byte
}

// newRuntimeAPI starts a Runtime API whose invocations have 30 s, or
// deadline if given, to answer.
func newRuntimeAPI(t *testing.T, deadline ...time.Duration) *runtimeAPI {
	t.Helper()
	r := &runtimeAPI{pending: make(chan invocation, 8), answers: map[string]chan answer{}, done: make(chan struct{}),
		polled: make(chan struct{}), deadline: 30 * time.Second}
	if len(deadline) > 0 {
		r.deadline = deadline[0]
	}
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
		r.pollOnce.Do(func() { close(r.polled) })
		select {
		case inv := <-r.pending:
			h := w.Header()
			h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
			h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(r.deadline).UnixMilli(), 10))
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
	case <-time.After(r.deadline + 30*time.Second):
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
// their environment alone. expire applies 100 pools (one of 4 slot
// shards) on CloudFormation custom resource events (Create, Update,
// Delete), answering at a stand-in for the pre-signed ResponseURL; submit
// and mailbox then start cold through a proxy that counts their AWS
// requests: none before their first invocation. A submission through
// submit's API Gateway event is read back through mailbox's, and expire
// sweeps on a scheduled event.
func TestFunctionBinaries(t *testing.T) {
	t.Parallel()
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := hex.EncodeToString(r[:])
	table, prefix := "parkinglot-"+name, "pl"+name+"-"
	env := []string{"AWS_REGION=us-east-1", "PARKINGLOT_TABLE=" + table, "PARKINGLOT_QUEUE_PREFIX=" + prefix}
	apis := map[string]*runtimeAPI{}
	// expire creates the table and, as it applies the pools, their queues
	// (local use; a stack's own resources exist before).
	apis["expire"] = newRuntimeAPI(t, 5*time.Minute)
	startFunction(t, "expire", apis["expire"], append([]string{"AWS_ENDPOINT_URL=" + moto.Endpoint, "PARKINGLOT_CREATE_RESOURCES=true"}, env...))

	pools := hundredPools()
	cf := newCFNResponses(t)
	a := apis["expire"].invoke(t, cf.event(t, "Create", "", pools))
	require.True(t, a.ok, "expire failed: %s", a.body)
	cr := cf.next(t)
	require.Equal(t, cfn.StatusSuccess, cr.Status, cr.Reason)
	require.Equal(t, map[string]any{"Created": 100.0, "Updated": 0.0, "Unchanged": 0.0}, cr.Data)
	require.Equal(t, "Pools", cr.PhysicalResourceID)

	st := storeOnMoto(t, table, prefix)
	got, err := st.Pools(context.Background())
	require.NoError(t, err)
	require.Len(t, got, len(pools))
	for _, p := range got {
		require.Equal(t, pools[slices.IndexFunc(pools, func(c core.PoolConfig) bool { return c.Name == p.Name })], p.PoolConfig)
	}
	hot, err := st.Pool(context.Background(), "hot")
	require.NoError(t, err)
	require.Equal(t, 4, hot.SlotShards, "slotShards reaches the table")

	changed := slices.Clone(pools)
	changed[1].Capacity++
	a = apis["expire"].invoke(t, cf.event(t, "Update", cr.PhysicalResourceID, changed))
	require.True(t, a.ok, "expire failed: %s", a.body)
	cr = cf.next(t)
	require.Equal(t, cfn.StatusSuccess, cr.Status, cr.Reason)
	require.Equal(t, map[string]any{"Created": 0.0, "Updated": 1.0, "Unchanged": 99.0}, cr.Data)

	a = apis["expire"].invoke(t, cf.event(t, "Delete", cr.PhysicalResourceID, changed))
	require.True(t, a.ok, "expire failed: %s", a.body)
	cr = cf.next(t)
	require.Equal(t, cfn.StatusSuccess, cr.Status, cr.Reason)
	got, err = st.Pools(context.Background())
	require.NoError(t, err)
	require.Len(t, got, len(pools), "Delete leaves the retained table alone")

	// Cold starts: no request at all, let alone a write of the pools.
	count := newCountingProxy(t, moto.Endpoint)
	for _, fn := range []string{"submit", "mailbox"} {
		apis[fn] = newRuntimeAPI(t)
		startFunction(t, fn, apis[fn], append([]string{"AWS_ENDPOINT_URL=" + count.URL()}, env...))
		select {
		case <-apis[fn].polled:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s did not ask for an invocation", fn)
		}
	}
	require.Empty(t, count.requests(), "requests of the cold starts")

	a = apis["submit"].invoke(t, fixture(t, "apigw-v2-submit.json"))
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

// hundredPools are the pools TestFunctionBinaries applies: gpu (the
// fixtures' pool), hot on 4 slot shards, and 98 more of every executor.
func hundredPools() []core.PoolConfig {
	ps := []core.PoolConfig{
		{Name: "gpu", Capacity: 1, MaxParked: 5, DefaultMaxWait: time.Minute, RunTimeout: time.Minute},
		{Name: "hot", Capacity: 8, MaxParked: 100, DefaultMaxWait: time.Hour, RunTimeout: 30 * time.Second, SlotShards: 4},
	}
	executors := []core.Executor{"", core.ExecutorPull, core.ExecutorPermit}
	for i := len(ps); i < 100; i++ {
		ps = append(ps, core.PoolConfig{Name: fmt.Sprintf("pool-%02d", i), Capacity: 1 + i%7, MaxParked: 10 * i,
			DefaultMaxWait: time.Duration(1+i%5) * time.Minute, RunTimeout: time.Duration(1+i%3) * time.Minute, Executor: executors[i%3]})
	}
	return ps
}

// storeOnMoto is an awsstore.Store over table and prefix on moto; with
// create, it creates the table, and PutPool the pools' queues.
func storeOnMoto(t *testing.T, table, prefix string, create ...bool) *awsstore.Store {
	t.Helper()
	st, err := awsconfig.Open(context.Background(), awsconfig.Settings{Region: mototest.Region, Endpoint: moto.Endpoint, Table: table,
		QueuePrefix: prefix, CreateResources: len(create) > 0 && create[0]}, moto.Config(), awsstore.Options{})
	require.NoError(t, err)
	return st
}

// applyPools creates table and prefix's queues on moto and applies pools,
// as the stack's custom resource or `parkinglot pools apply` does.
func applyPools(t *testing.T, table, prefix string, pools ...core.PoolConfig) {
	t.Helper()
	_, err := poolapply.Apply(context.Background(), storeOnMoto(t, table, prefix, true), pools)
	require.NoError(t, err)
}

// cfnResponses stands in for CloudFormation's pre-signed ResponseURL: it
// records the custom resource responses PUT to it.
type cfnResponses struct {
	srv *httptest.Server
	got chan cfn.Response
	n   int
}

func newCFNResponses(t *testing.T) *cfnResponses {
	t.Helper()
	c := &cfnResponses{got: make(chan cfn.Response, 4)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var res cfn.Response
		if r.Method != http.MethodPut || r.Header.Get("Content-Type") != "" || json.NewDecoder(r.Body).Decode(&res) != nil {
			http.Error(w, "want a PUT of a JSON response without Content-Type, as the pre-signed URL was signed", http.StatusForbidden)
			return
		}
		c.got <- res
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// event is a CloudFormation custom resource request of the stack's pools
// resource, as CloudFormation sends it (every property a string).
func (c *cfnResponses) event(t *testing.T, typ, physicalID string, pools []core.PoolConfig) []byte {
	t.Helper()
	c.n++
	specs := make([]lambdaapi.PoolSpec, len(pools))
	for i, p := range pools {
		specs[i] = lambdaapi.PoolSpecOf(p)
	}
	raw, err := json.Marshal(specs)
	require.NoError(t, err)
	ev := map[string]any{
		"RequestType": typ, "ResponseURL": c.srv.URL + fmt.Sprintf("/cfn/%d?X-Amz-Signature=x", c.n),
		"StackId": "arn:aws:cloudformation:us-east-1:000000000000:stack/Parkinglot/1", "RequestId": fmt.Sprintf("req-%d", c.n),
		"ResourceType": lambdaapi.PoolsResourceType, "LogicalResourceId": "Pools",
		"ResourceProperties": map[string]any{"ServiceToken": "arn:aws:lambda:us-east-1:000000000000:function:expire",
			lambdaapi.PropPools: string(raw), lambdaapi.PropTable: "t"},
	}
	if physicalID != "" {
		ev["PhysicalResourceId"] = physicalID
	}
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	return b
}

// next returns the next response PUT.
func (c *cfnResponses) next(t *testing.T) cfn.Response {
	t.Helper()
	select {
	case r := <-c.got:
		return r
	case <-time.After(time.Minute):
		t.Fatal("no custom resource response")
		return cfn.Response{}
	}
}

// countingProxy forwards requests to an AWS endpoint and records each
// request's operation (its X-Amz-Target, or method and path).
type countingProxy struct {
	srv *httptest.Server
	mu  sync.Mutex
	ops []string
}

func newCountingProxy(t *testing.T, endpoint string) *countingProxy {
	t.Helper()
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		if op == "" {
			op = r.Method + " " + r.URL.Path
		}
		p.mu.Lock()
		p.ops = append(p.ops, op)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *countingProxy) URL() string { return p.srv.URL }

func (p *countingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ops)
}
