package httpapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Target is a running HTTP API v1 under test.
type Target struct {
	// BaseURL is where the API is served, without a trailing slash, e.g.
	// "http://127.0.0.1:8080"; the suite appends "/v1/...".
	BaseURL string
	// AcmeToken and GlobexToken are bearer tokens of tenants "acme" and
	// "globex".
	AcmeToken   string
	GlobexToken string
	// WorkerToken is the bearer token of a worker (role worker) named
	// Worker, of the suite's WorkerPools.
	WorkerToken string
	// Client sends the requests. Default: http.DefaultClient.
	Client *http.Client
}

// requestTimeout bounds one request: a hang guard, far above what any
// request takes even on a loaded machine over moto; long polls ask for far
// less.
const requestTimeout = 2 * time.Minute

// caller sends requests as one tenant.
type caller struct {
	t      *testing.T
	target Target
	token  string
}

// response is what came back.
type response struct {
	code int
	hdr  http.Header
	body []byte
}

// raw sends body as it is (no body when empty) with extra headers.
func (c caller) raw(method, path, body string, hdr ...string) response {
	c.t.Helper()
	return c.roundTrip(method, path, "", body, hdr)
}

// rawURI is raw with uri sent as the request target exactly as given, so
// that it may hold what a URL parser refuses (an invalid escape).
func (c caller) rawURI(method, uri, body string, hdr ...string) response {
	c.t.Helper()
	return c.roundTrip(method, "/", uri, body, hdr)
}

// roundTrip sends one request to path, or with opaque (if not empty) as
// its request target.
func (c caller) roundTrip(method, path, opaque, body string, hdr []string) response {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.target.BaseURL, "/")+path, rd)
	require.NoError(c.t, err)
	target := path
	if opaque != "" {
		req.URL.Opaque, target = opaque, opaque
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	cl := c.target.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	res, err := cl.Do(req)
	require.NoError(c.t, err, "%s %s", method, target)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(c.t, err)
	return response{code: res.StatusCode, hdr: res.Header, body: data}
}

// send marshals v (a map or struct) as the body.
func (c caller) send(method, path string, v any) response {
	c.t.Helper()
	var buf bytes.Buffer
	require.NoError(c.t, json.NewEncoder(&buf).Encode(v))
	return c.raw(method, path, buf.String())
}

func (c caller) get(path string) response {
	c.t.Helper()
	return c.raw(http.MethodGet, path, "")
}

// expect requires status code and returns the body decoded into T.
func expect[T any](t *testing.T, r response, code int) T {
	t.Helper()
	require.Equal(t, code, r.code, "body: %s", r.body)
	var v T
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// object is a decoded JSON object, to check field names as the wire has them.
type object = map[string]any

// The wire shapes, as DESIGN.md names their fields. The suite decodes into
// these rather than the server's own types, so that a renamed field fails.
type task struct {
	ID             string          `json:"id"`
	Key            string          `json:"key"`
	Tenant         string          `json:"tenant"`
	Pool           string          `json:"pool"`
	Recipient      string          `json:"recipient"`
	State          string          `json:"state"`
	Payload        json.RawMessage `json:"payload"`
	SubmittedAt    string          `json:"submittedAt"`
	Deadline       string          `json:"deadline"`
	StartedAt      string          `json:"startedAt"`
	Lease          string          `json:"lease"`
	LeaseExpiresAt string          `json:"leaseExpiresAt"`
	EndedAt        string          `json:"endedAt"`
	Result         json.RawMessage `json:"result"`
	Error          string          `json:"error"`
}

// taskBody is the submit response: the task under "task".
type taskBody struct {
	Task task `json:"task"`
}

type message struct {
	Cursor         string          `json:"cursor"`
	TaskID         string          `json:"taskId"`
	Tenant         string          `json:"tenant"`
	Pool           string          `json:"pool"`
	Type           string          `json:"type"`
	Key            string          `json:"key"`
	Payload        json.RawMessage `json:"payload"`
	Deadline       string          `json:"deadline"`
	Lease          string          `json:"lease"`
	LeaseExpiresAt string          `json:"leaseExpiresAt"`
	Result         json.RawMessage `json:"result"`
	Error          string          `json:"error"`
	At             string          `json:"at"`
}

type mailboxPage struct {
	Messages []message `json:"messages"`
	Next     string    `json:"next"`
}

type event struct {
	At     string `json:"at"`
	Tenant string `json:"tenant"`
	Pool   string `json:"pool"`
	TaskID string `json:"taskId"`
	Type   string `json:"type"`
	From   string `json:"from"`
	To     string `json:"to"`
	Detail string `json:"detail"`
}

type auditPage struct {
	Events []event `json:"events"`
	Next   string  `json:"next"`
}

type pool struct {
	Name      string `json:"name"`
	Capacity  int    `json:"capacity"`
	Running   int    `json:"running"`
	Parked    int    `json:"parked"`
	MaxParked int    `json:"maxParked"`
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
	Task *task `json:"task"`
}

// Field names each object may carry on the wire.
var (
	taskFields = []string{"id", "key", "tenant", "pool", "recipient", "state", "payload", "submittedAt", "deadline",
		"startedAt", "lease", "leaseExpiresAt", "endedAt", "result", "error"}
	messageFields = []string{"cursor", "taskId", "tenant", "pool", "type", "key", "payload", "deadline", "lease", "leaseExpiresAt", "result", "error", "at"}
	eventFields   = []string{"at", "tenant", "pool", "taskId", "type", "from", "to", "detail"}
	poolFields    = []string{"name", "executor", "capacity", "running", "parked", "maxParked"}
	errorFields   = []string{"code", "message", "field"}
)

// requireFields checks that obj has every name of required and no name
// outside allowed.
func requireFields(t *testing.T, obj object, allowed []string, required ...string) {
	t.Helper()
	for _, k := range required {
		require.Contains(t, obj, k, "object %v lacks %q", obj, k)
	}
	for k := range obj {
		require.Contains(t, allowed, k, "object %v has unexpected field %q", obj, k)
	}
}

// taskRequired are the fields every Task carries.
var taskRequired = []string{"id", "tenant", "pool", "recipient", "state", "submittedAt", "deadline"}

// expectTask requires status code and a bare Task as the body (GET
// /v1/tasks/{id}, complete, cancel): a JSON object whose top-level fields
// are all Task fields, with the ones every task has.
func expectTask(t *testing.T, r response, code int) task {
	t.Helper()
	require.Equal(t, code, r.code, "body: %s", r.body)
	require.True(t, strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json"), "content type %q", r.hdr.Get("Content-Type"))
	var raw object
	require.NoError(t, json.Unmarshal(r.body, &raw), "body: %s", r.body)
	requireFields(t, raw, taskFields, taskRequired...)
	tk := expect[task](t, r, code)
	require.NotEmpty(t, tk.ID, "body: %s", r.body)
	return tk
}

// expectSubmitted requires status code and the submit response: an object
// with "task" alone, whose fields are Task fields.
func expectSubmitted(t *testing.T, r response, code int) task {
	t.Helper()
	require.Equal(t, code, r.code, "body: %s", r.body)
	var raw object
	require.NoError(t, json.Unmarshal(r.body, &raw), "body: %s", r.body)
	requireFields(t, raw, []string{"task"}, "task")
	inner, ok := raw["task"].(map[string]any)
	require.True(t, ok, "task is not an object in %s", r.body)
	requireFields(t, inner, taskFields, taskRequired...)
	return expect[taskBody](t, r, code).Task
}

// requireError checks the error shape, status, code and field of r.
func requireError(t *testing.T, r response, code int, apiCode, field string) errorBody {
	t.Helper()
	require.Equal(t, code, r.code, "body: %s", r.body)
	require.True(t, strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json"), "content type %q", r.hdr.Get("Content-Type"))
	var raw object
	require.NoError(t, json.Unmarshal(r.body, &raw), "body: %s", r.body)
	inner, ok := raw["error"].(map[string]any)
	require.True(t, ok, "no error object in %s", r.body)
	requireFields(t, inner, errorFields, "code", "message")
	for k := range raw {
		require.Contains(t, []string{"error", "task"}, k, "unexpected top-level field in %s", r.body)
	}
	var e errorBody
	require.NoError(t, json.Unmarshal(r.body, &e))
	require.Equal(t, apiCode, e.Error.Code, "body: %s", r.body)
	require.NotEmpty(t, e.Error.Message)
	if field != "" {
		require.Equal(t, field, e.Error.Field, "body: %s", r.body)
	}
	return e
}

// requireTime checks that s is an RFC 3339 UTC time and returns it.
func requireTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err, "time %q", s)
	require.True(t, strings.HasSuffix(s, "Z"), "time %q is not UTC", s)
	return ts
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}

// WorkerTokenYAML is the auth.tokens entry, in a parkinglot configuration
// file, of the suite's worker with token: a line to append to the list.
func WorkerTokenYAML(token string) string {
	return fmt.Sprintf("    - {token: %s, role: worker, name: %s, pools: [%s]}\n", token, Worker, strings.Join(WorkerPools, ", "))
}

// PoolsYAML is the pools section of a parkinglot configuration file.
func PoolsYAML(pools []core.PoolConfig) string {
	var b strings.Builder
	b.WriteString("pools:\n")
	for _, p := range pools {
		ex := p.Executor
		if ex == "" {
			ex = core.ExecutorPermit
		}
		fmt.Fprintf(&b, "  - {name: %s, capacity: %d, maxParked: %d, defaultMaxWait: %s, runTimeout: %s, executor: %s}\n",
			p.Name, p.Capacity, p.MaxParked, p.DefaultMaxWait, p.RunTimeout, ex)
	}
	return b.String()
}
