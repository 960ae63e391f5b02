package lambdaapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// syncBuffer collects EMF lines written concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes every EMF line written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "line %q", l)
		out = append(out, m)
	}
	return out
}

// withMetric returns the lines that carry metric name.
func withMetric(lines []map[string]any, name string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if _, ok := l[name]; ok {
			out = append(out, l)
		}
	}
	return out
}

type bundle struct {
	clock *core.StubClock
	store *memstore.Store
	sched *core.Scheduler
	fns   map[lambdaapi.Function]*lambdaapi.Handler
	emf   *syncBuffer
}

var epoch = time.Date(2026, 11, 27, 17, 50, 0, 0, time.UTC)

// setup returns the four handlers over one memory store on a stub clock,
// with pools gpu (capacity 1, maxParked 1) and cpu (capacity 4, maxParked
// 10), and edit applied to each handler's config.
func setup(t *testing.T, edit ...func(*lambdaapi.Config)) *bundle {
	t.Helper()
	b := &bundle{clock: core.NewStubClock(epoch), emf: &syncBuffer{}, fns: map[lambdaapi.Function]*lambdaapi.Handler{}}
	b.store = memstore.New(memstore.Options{Clock: b.clock})
	mets := lambdaapi.NewMetrics(b.emf, "", b.clock)
	var err error
	b.sched, err = core.New(core.Config{Backend: b.store, Clock: b.clock, Observer: mets.Observer()})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, b.sched.PutPool(ctx, core.PoolConfig{Name: "gpu", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}))
	require.NoError(t, b.sched.PutPool(ctx, core.PoolConfig{Name: "cpu", Capacity: 4, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}))
	for _, fn := range lambdaapi.Functions {
		s, err := core.New(core.Config{Backend: b.store, Clock: b.clock, Observer: mets.Observer()})
		require.NoError(t, err)
		cfg := lambdaapi.Config{Function: fn, Scheduler: s, Metrics: mets, SourceTenants: map[string]string{"com.acme.orders": "acme"}}
		for _, e := range edit {
			e(&cfg)
		}
		h, err := lambdaapi.New(cfg)
		require.NoError(t, err)
		b.fns[fn] = h
	}
	return b
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return data
}

// invokeHTTP invokes fn with the API Gateway event payload.
func (b *bundle) invokeHTTP(t *testing.T, fn lambdaapi.Function, payload []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
	out, err := b.fns[fn].Invoke(context.Background(), payload)
	require.NoError(t, err)
	var res events.APIGatewayV2HTTPResponse
	require.NoError(t, json.Unmarshal(out, &res))
	return res
}

func decodeBody[T any](t *testing.T, res events.APIGatewayV2HTTPResponse) T {
	t.Helper()
	var v T
	require.False(t, res.IsBase64Encoded)
	require.NoError(t, json.Unmarshal([]byte(res.Body), &v), "body %s", res.Body)
	return v
}

type taskJSON struct {
	ID        string          `json:"id"`
	Key       string          `json:"key"`
	Tenant    string          `json:"tenant"`
	Pool      string          `json:"pool"`
	Recipient string          `json:"recipient"`
	State     string          `json:"state"`
	Payload   json.RawMessage `json:"payload"`
	Lease     string          `json:"lease"`
}

func TestEveryRouteHasAFunction(t *testing.T) {
	t.Parallel()
	rs := lambdaapi.Routes()
	require.Len(t, rs, len(httpapi.Routes()))
	for _, rt := range rs {
		require.True(t, rt.Function.Valid(), "%s has no function", rt.Key())
		require.NotEqual(t, lambdaapi.Expire, rt.Function, "expire serves no route")
	}
}

func TestClaimAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *lambdaapi.Config) { c.TenantClaim = "custom:org" })
	ev := func(claims map[string]string) []byte {
		var e events.APIGatewayV2HTTPRequest
		require.NoError(t, json.Unmarshal(fixture(t, "apigw-v2-submit.json"), &e))
		e.RouteKey, e.RawPath, e.Body = "GET /v1/pools", "/v1/pools", ""
		e.RequestContext.HTTP.Method = http.MethodGet
		e.RequestContext.Authorizer = nil
		if claims != nil {
			e.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims},
			}
		}
		out, err := json.Marshal(e)
		require.NoError(t, err)
		return out
	}
	for _, c := range []struct {
		name   string
		claims map[string]string
		code   int
	}{
		{"no authorizer", nil, http.StatusUnauthorized},
		{"no claims", map[string]string{}, http.StatusUnauthorized},
		{"default claim name only", map[string]string{"tenant": "acme"}, http.StatusUnauthorized},
		{"empty claim", map[string]string{"custom:org": ""}, http.StatusUnauthorized},
		{"configured claim", map[string]string{"custom:org": "acme"}, http.StatusOK},
	} {
		res := b.invokeHTTP(t, lambdaapi.Mailbox, ev(c.claims))
		require.Equal(t, c.code, res.StatusCode, "%s: %s", c.name, res.Body)
		if c.code == http.StatusUnauthorized {
			require.Equal(t, "unauthorized", decodeBody[errBody](t, res).Error.Code, c.name)
			require.Contains(t, res.Headers["Www-Authenticate"], "Bearer", c.name)
		}
	}
}

type errBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
	Task *taskJSON `json:"task"`
}

func TestAPIGatewayFixtures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.invokeHTTP(t, lambdaapi.Submit, fixture(t, "apigw-v2-submit.json"))
	require.Equal(t, http.StatusCreated, res.StatusCode, res.Body)
	require.Equal(t, "application/json", res.Headers["Content-Type"])
	a := decodeBody[struct{ Task taskJSON }](t, res).Task
	require.Equal(t, "/v1/tasks/"+a.ID, res.Headers["Location"])
	require.Equal(t, "acme", a.Tenant, "the tenant comes from the JWT claim")
	require.Equal(t, "gpu", a.Pool)
	require.Equal(t, "worker-1", a.Recipient)
	require.Equal(t, "running", a.State)
	require.JSONEq(t, `{"job":"render"}`, string(a.Payload))

	// A base64-encoded body is decoded; gpu is full, so this one parks.
	res = b.invokeHTTP(t, lambdaapi.Submit, fixture(t, "apigw-v2-submit-base64.json"))
	require.Equal(t, http.StatusCreated, res.StatusCode, res.Body)
	p := decodeBody[struct{ Task taskJSON }](t, res).Task
	require.Equal(t, "parked", p.State)
	require.JSONEq(t, `{"text":"café"}`, string(p.Payload))

	// The mailbox function reads the started message, with the lease.
	res = b.invokeHTTP(t, lambdaapi.Mailbox, fixture(t, "apigw-v2-mailbox.json"))
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	page := decodeBody[struct {
		Messages []struct {
			TaskID, Type, Lease string
		}
	}](t, res)
	require.Len(t, page.Messages, 1)
	require.Equal(t, a.ID, page.Messages[0].TaskID)
	require.Equal(t, "started", page.Messages[0].Type)
	require.Equal(t, a.Lease, page.Messages[0].Lease)

	// Without the authorizer's claims the request is refused.
	res = b.invokeHTTP(t, lambdaapi.Submit, fixture(t, "apigw-v2-no-authorizer.json"))
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, res.Body)
	st, err := b.sched.Pool(context.Background(), "gpu")
	require.NoError(t, err)
	require.Equal(t, core.PoolStats{Name: "gpu", Capacity: 1, Running: 1, Parked: 1, MaxParked: 1}, st)

	// Each request is logged as one EMF line with its route and status.
	reqs := withMetric(b.emf.lines(t), "Requests")
	require.Len(t, reqs, 4)
	require.Equal(t, "POST /v1/pools/{pool}/tasks", reqs[0]["route"])
	require.Equal(t, "201", reqs[0]["status"])
	require.Equal(t, "submit", reqs[0]["Function"])
	require.Equal(t, "JKJaXmPLvHcESHA=", reqs[0]["apiRequestId"])
	require.Equal(t, "401", reqs[3]["status"])
}

// TestRouteOfAnotherFunction: a function answers a route that is not its own
// as the server answers a path it has no route for, and changes nothing.
func TestRouteOfAnotherFunction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The server's answer to an unknown path, for the expected shape.
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/unknown", nil)
	httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"t": "acme"})}).ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code)

	var base events.APIGatewayV2HTTPRequest
	require.NoError(t, json.Unmarshal(fixture(t, "apigw-v2-submit.json"), &base))
	for _, rt := range lambdaapi.Routes() {
		path := strings.NewReplacer("{pool}", "gpu", "{id}", "t1", "{recipient}", "worker-1").Replace(rt.Path)
		ev := base
		ev.RouteKey, ev.RawPath = rt.Key(), path
		ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = rt.Method, path
		payload, err := json.Marshal(ev)
		require.NoError(t, err)
		for _, fn := range []lambdaapi.Function{lambdaapi.Submit, lambdaapi.Dispatch, lambdaapi.Mailbox} {
			if fn == rt.Function {
				continue
			}
			res := b.invokeHTTP(t, fn, payload)
			require.Equal(t, http.StatusNotFound, res.StatusCode, "%s given %s", fn, rt.Key())
			want := strings.Replace(rec.Body.String(), "/v1/unknown", path, 1)
			require.Equal(t, want, res.Body, "%s given %s", fn, rt.Key())
			for _, h := range []string{"Content-Type", "Cache-Control", "X-Content-Type-Options"} {
				require.Equal(t, rec.Header().Get(h), res.Headers[h], h)
			}
		}
	}
	ps, err := b.sched.Pools(context.Background())
	require.NoError(t, err)
	for _, p := range ps {
		require.Zero(t, p.Running+p.Parked, "pool %s", p.Name)
	}
}

// TestBadPathEscape: an event whose raw path holds an escape that does not
// decode is the client's bad input: 400 in the API's error shape naming the
// parameter, not a failed invocation.
func TestBadPathEscape(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var base events.APIGatewayV2HTTPRequest
	require.NoError(t, json.Unmarshal(fixture(t, "apigw-v2-submit.json"), &base))
	for _, c := range []struct {
		fn                  lambdaapi.Function
		method, path, field string
	}{
		{lambdaapi.Submit, http.MethodPost, "/v1/pools/%ZZ/tasks", "pool"},
		{lambdaapi.Dispatch, http.MethodPost, "/v1/tasks/t%1/cancel", "id"},
		{lambdaapi.Mailbox, http.MethodGet, "/v1/mailbox/w%/", "path"},
		{lambdaapi.Mailbox, http.MethodGet, "/v1/mailbox/%zz", "recipient"},
	} {
		ev := base
		ev.RawPath, ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = c.path, c.method, c.path
		payload, err := json.Marshal(ev)
		require.NoError(t, err)
		res := b.invokeHTTP(t, c.fn, payload)
		require.Equal(t, http.StatusBadRequest, res.StatusCode, "%s: %s", c.path, res.Body)
		require.Equal(t, "application/json", res.Headers["Content-Type"])
		e := decodeBody[api.Error](t, res)
		require.Equal(t, "invalid_request", e.Error.Code)
		require.Equal(t, c.field, e.Error.Field, "%s", res.Body)
	}
	ps, err := b.sched.Pools(context.Background())
	require.NoError(t, err)
	for _, p := range ps {
		require.Zero(t, p.Running+p.Parked, "pool %s", p.Name)
	}
}

func TestUnsupportedEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, c := range []struct {
		fn      lambdaapi.Function
		fixture string
	}{
		{lambdaapi.Expire, "apigw-v2-submit.json"},
		{lambdaapi.Dispatch, "sqs-submit.json"},
		{lambdaapi.Mailbox, "sqs-submit.json"},
		{lambdaapi.Dispatch, "eventbridge-submit.json"},
		{lambdaapi.Mailbox, "eventbridge-scheduled.json"},
	} {
		_, err := b.fns[c.fn].Invoke(ctx, fixture(t, c.fixture))
		require.ErrorIs(t, err, lambdaapi.ErrUnsupportedEvent, "%s given %s", c.fn, c.fixture)
	}
	// Expire takes any other object as its schedule's trigger.
	_, err := b.fns[lambdaapi.Expire].Invoke(ctx, []byte(`{}`))
	require.NoError(t, err)
	require.Len(t, withMetric(b.emf.lines(t), "Sweeps"), 1)
	_, err = b.fns[lambdaapi.Expire].Invoke(ctx, []byte(`[]`))
	require.Error(t, err)
	_, err = b.fns[lambdaapi.Submit].Invoke(ctx, []byte(`{"hello":"world"}`))
	require.ErrorIs(t, err, lambdaapi.ErrUnsupportedEvent)
	_, err = b.fns[lambdaapi.Submit].Invoke(ctx, []byte(`not json`))
	require.Error(t, err)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	require.NoError(t, err)
	_, err = lambdaapi.New(lambdaapi.Config{Function: "other", Scheduler: s})
	require.ErrorContains(t, err, "Function")
	_, err = lambdaapi.New(lambdaapi.Config{Function: lambdaapi.Submit})
	require.ErrorContains(t, err, "Scheduler")
	_, err = lambdaapi.New(lambdaapi.Config{Function: lambdaapi.Expire, Scheduler: s, SweepEvery: -time.Second})
	require.ErrorContains(t, err, "SweepEvery")
}
