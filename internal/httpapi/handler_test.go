package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

// bundle is a handler over core and memstore driven by a stub clock.
type bundle struct {
	clock *core.StubClock
	sched *core.Scheduler
	h     http.Handler
}

var testPools = []core.PoolConfig{
	{Name: "gpu", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute},
	{Name: "cpu", Capacity: 4, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute},
}

func setup(t *testing.T) *bundle {
	t.Helper()
	clk := core.NewStubClock(time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC))
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{Clock: clk}), Clock: clk})
	require.NoError(t, err)
	for _, p := range testPools {
		require.NoError(t, s.PutPool(context.Background(), p))
	}
	h := httpapi.New(httpapi.Options{
		Scheduler: s,
		Auth:      httpapi.NewTokenAuth(map[string]string{"tok-acme": "acme", "tok-globex": "globex"}),
	})
	return &bundle{clock: clk, sched: s, h: h}
}

// do serves one request as tenant token tok and returns the status, headers
// and body.
func (b *bundle) do(t *testing.T, tok, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(data, &v), "body %s", data)
	return v
}

// decodeTask decodes a bare Task strictly: a field that is not a Task field,
// such as a "task" wrapper, fails.
func decodeTask(t *testing.T, data []byte) api.Task {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var v api.Task
	require.NoError(t, dec.Decode(&v), "body %s", data)
	require.NotEmpty(t, v.ID, "body %s", data)
	return v
}

func TestSubmitCompleteFlow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, hdr, body := b.do(t, "tok-acme", "POST", "/v1/pools/gpu/tasks", `{"payload":{"n":1}}`)
	require.Equal(t, http.StatusCreated, code, "%s", body)
	task := decode[api.TaskBody](t, body).Task
	require.Equal(t, "running", task.State)
	require.NotEmpty(t, task.Lease)
	require.Equal(t, "/v1/tasks/"+task.ID, hdr.Get("Location"))

	code, _, body = b.do(t, "tok-acme", "POST", "/v1/tasks/"+task.ID+"/complete", `{"lease":"`+task.Lease+`","status":"succeeded","result":[1]}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	done := decodeTask(t, body)
	require.Equal(t, task.ID, done.ID)
	require.Equal(t, "succeeded", done.State)
	require.JSONEq(t, `[1]`, string(done.Result))
}

// TestTaskShapes: submit answers {"task": Task}; GET, complete and cancel
// answer the bare Task, whose top-level fields are Task fields only.
func TestTaskShapes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	taskFields := map[string]bool{}
	typ := reflect.TypeFor[api.Task]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		taskFields[name] = true
	}
	keys := func(body []byte) []string {
		var o map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &o), "body %s", body)
		var out []string
		for k := range o {
			out = append(out, k)
		}
		return out
	}
	bare := func(code int, body []byte) api.Task {
		t.Helper()
		require.Equal(t, http.StatusOK, code, "%s", body)
		for _, k := range keys(body) {
			require.True(t, taskFields[k], "field %q of %s is not a Task field", k, body)
		}
		return decodeTask(t, body)
	}

	code, _, body := b.do(t, "tok-acme", "POST", "/v1/pools/gpu/tasks", `{}`)
	require.Equal(t, http.StatusCreated, code, "%s", body)
	require.Equal(t, []string{"task"}, keys(body))
	a := decode[api.TaskBody](t, body).Task
	p := b.submitTask(t, "gpu", `{}`, http.StatusCreated)
	require.Equal(t, "parked", p.State)

	code, _, body = b.do(t, "tok-acme", "GET", "/v1/tasks/"+a.ID, "")
	require.Equal(t, a, bare(code, body))

	code, _, body = b.do(t, "tok-acme", "POST", "/v1/tasks/"+p.ID+"/cancel", "")
	got := bare(code, body)
	require.Equal(t, p.ID, got.ID)
	require.Equal(t, "cancelled", got.State)

	code, _, body = b.do(t, "tok-acme", "POST", "/v1/tasks/"+a.ID+"/complete", `{"lease":"`+a.Lease+`","status":"failed","error":"boom"}`)
	got = bare(code, body)
	require.Equal(t, a.ID, got.ID)
	require.Equal(t, "failed", got.State)
	require.Equal(t, "boom", got.Error)
	require.Empty(t, got.Lease)
}

// submitTask submits body to pool as acme and requires status code.
func (b *bundle) submitTask(t *testing.T, pool, body string, code int) api.Task {
	t.Helper()
	c, _, out := b.do(t, "tok-acme", "POST", "/v1/pools/"+pool+"/tasks", body)
	require.Equal(t, code, c, "%s", out)
	return decode[api.TaskBody](t, out).Task
}

func (b *bundle) getTask(t *testing.T, id string) api.Task {
	t.Helper()
	c, _, out := b.do(t, "tok-acme", "GET", "/v1/tasks/"+id, "")
	require.Equal(t, http.StatusOK, c, "%s", out)
	return decodeTask(t, out)
}

func (b *bundle) errorOf(t *testing.T, code int, out []byte, wantCode int, apiCode, field string) {
	t.Helper()
	require.Equal(t, wantCode, code, "%s", out)
	e := decode[api.Error](t, out)
	require.Equal(t, apiCode, e.Error.Code, "%s", out)
	require.Equal(t, field, e.Error.Field, "%s", out)
}

// mailboxTypes lists (task, type) of acme's messages to recipient.
func (b *bundle) mailboxTypes(t *testing.T, recipient string) []string {
	t.Helper()
	page, err := b.sched.Mailbox(context.Background(), core.MailboxRequest{Tenant: "acme", Recipient: recipient, Limit: core.MaxPageLimit})
	require.NoError(t, err)
	var out []string
	for _, m := range page.Messages {
		out = append(out, m.TaskID+" "+string(m.Type))
	}
	return out
}

func TestTimesHaveNanoseconds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, _, raw := b.do(t, "tok-acme", "POST", "/v1/pools/cpu/tasks", `{"maxWait":"90s","runTimeout":"45s"}`)
	var body struct {
		Task map[string]any `json:"task"`
	}
	require.NoError(t, json.Unmarshal(raw, &body))
	require.Equal(t, "2026-03-01T12:00:00.123456789Z", body.Task["submittedAt"])
	require.Equal(t, "2026-03-01T12:00:00.123456789Z", body.Task["startedAt"])
	require.Equal(t, "2026-03-01T12:01:30.123456789Z", body.Task["deadline"])
	require.Equal(t, "2026-03-01T12:00:45.123456789Z", body.Task["leaseExpiresAt"])
}

func TestLeaseLostAtLeaseEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.submitTask(t, "gpu", `{"runTimeout":"30s"}`, http.StatusCreated)
	hb := `{"lease":"` + a.Lease + `"}`

	b.clock.Advance(30*time.Second - time.Nanosecond)
	code, _, out := b.do(t, "tok-acme", "POST", "/v1/tasks/"+a.ID+"/heartbeat", `{"lease":"`+a.Lease+`","extend":"10s"}`)
	require.Equal(t, http.StatusOK, code, "%s", out)
	require.Equal(t, b.clock.Now().Add(10*time.Second), decode[api.HeartbeatResponse](t, out).LeaseExpiresAt)

	// The lease ends at now+10s exactly: at that instant it is lost.
	b.clock.Advance(10 * time.Second)
	code, _, out = b.do(t, "tok-acme", "POST", "/v1/tasks/"+a.ID+"/heartbeat", hb)
	b.errorOf(t, code, out, http.StatusConflict, api.CodeLeaseLost, "lease")
	code, _, out = b.do(t, "tok-acme", "POST", "/v1/tasks/"+a.ID+"/complete", `{"lease":"`+a.Lease+`","status":"succeeded"}`)
	b.errorOf(t, code, out, http.StatusConflict, api.CodeLeaseLost, "lease")

	got := b.getTask(t, a.ID)
	require.Equal(t, "timed_out", got.State)
	require.Equal(t, b.clock.Now(), *got.EndedAt)
	require.Equal(t, []string{a.ID + " started", a.ID + " timed_out"}, b.mailboxTypes(t, "acme"))
	p, err := b.sched.Pool(context.Background(), "gpu")
	require.NoError(t, err)
	require.Equal(t, 0, p.Running)
}

// heldPusher is a core.Pusher that keeps what core pushes, as the target
// would receive it.
type heldPusher struct {
	mu     sync.Mutex
	pushed []core.Task
}

func (p *heldPusher) Push(t core.Task) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushed = append(p.pushed, t)
}

func (p *heldPusher) Hold(string) time.Duration { return time.Minute }

// TestPushLeaseIsTheTargets: a task of a push pool started at submission
// answers its tenant (201, a replay's 200, GET) without the lease, which
// the target got; the target completes with it (here with the tenant's
// token, as an sqs target's consumer may, through the API).
func TestPushLeaseIsTheTargets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pusher := &heldPusher{}
	s, err := core.New(core.Config{Backend: b.sched.Backend(), Clock: b.clock, Pusher: pusher})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(context.Background(), core.PoolConfig{Name: "hook", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute, Executor: core.ExecutorPush}))
	b.sched = s
	b.h = httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"tok-acme": "acme"})})

	created := b.submitTask(t, "hook", `{"key":"k"}`, http.StatusCreated)
	require.Equal(t, "running", created.State)
	require.Empty(t, created.Lease, "the target holds the lease")
	require.NotNil(t, created.LeaseExpiresAt)
	replayed := b.submitTask(t, "hook", `{"key":"k"}`, http.StatusOK)
	require.Equal(t, created.ID, replayed.ID)
	require.Empty(t, replayed.Lease)
	for _, path := range []string{"/v1/tasks/" + created.ID, "/v1/tasks/" + created.ID + "?wait=1s"} {
		code, _, out := b.do(t, "tok-acme", "GET", path, "")
		require.Equal(t, http.StatusOK, code, "%s", out)
		got := decodeTask(t, out)
		require.Equal(t, "running", got.State, path)
		require.Empty(t, got.Lease, path)
		require.NotContains(t, string(out), `"lease":`, path)
	}

	pusher.mu.Lock()
	require.Len(t, pusher.pushed, 1)
	held := pusher.pushed[0]
	pusher.mu.Unlock()
	require.Equal(t, created.ID, held.ID)
	require.NotEmpty(t, held.Lease)
	code, _, out := b.do(t, "tok-acme", "POST", "/v1/tasks/"+created.ID+"/complete", `{"lease":"`+held.Lease+`","status":"succeeded"}`)
	require.Equal(t, http.StatusOK, code, "%s", out)
	require.Equal(t, "succeeded", decodeTask(t, out).State)
}

func TestParkedTaskExpires(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.submitTask(t, "gpu", `{}`, http.StatusCreated)
	p := b.submitTask(t, "gpu", `{"maxWait":"5s"}`, http.StatusCreated)
	require.Equal(t, "parked", p.State)
	require.Equal(t, b.clock.Now().Add(5*time.Second), p.Deadline)

	// Before the deadline the sweep leaves it parked.
	b.clock.Advance(5*time.Second - time.Nanosecond)
	_, err := b.sched.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, "parked", b.getTask(t, p.ID).State)

	b.clock.Advance(time.Nanosecond)
	st, err := b.sched.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, st.Expired)
	got := b.getTask(t, p.ID)
	require.Equal(t, "expired", got.State)
	require.Nil(t, got.StartedAt)

	// Completing the running task now starts nothing.
	code, _, out := b.do(t, "tok-acme", "POST", "/v1/tasks/"+a.ID+"/complete", `{"lease":"`+a.Lease+`","status":"succeeded"}`)
	require.Equal(t, http.StatusOK, code, "%s", out)
	require.Equal(t, []string{a.ID + " started", p.ID + " expired", a.ID + " succeeded"}, b.mailboxTypes(t, "acme"))
}

func TestDeadlineAgainstSchedulerClock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.clock.Now()
	past := now.Add(-time.Nanosecond).Format(time.RFC3339Nano)
	code, _, out := b.do(t, "tok-acme", "POST", "/v1/pools/cpu/tasks", `{"deadline":"`+past+`"}`)
	b.errorOf(t, code, out, http.StatusBadRequest, api.CodeInvalidRequest, "deadline")
	code, _, out = b.do(t, "tok-acme", "POST", "/v1/pools/cpu/tasks", `{"deadline":"`+now.Format(time.RFC3339Nano)+`"}`)
	b.errorOf(t, code, out, http.StatusBadRequest, api.CodeInvalidRequest, "deadline")

	soon := now.Add(time.Nanosecond)
	got := b.submitTask(t, "cpu", `{"deadline":"`+soon.Format(time.RFC3339Nano)+`"}`, http.StatusCreated)
	require.Equal(t, soon, got.Deadline)
	require.Equal(t, 1, b.pool(t, "cpu").Running)
}

func (b *bundle) pool(t *testing.T, name string) core.PoolStats {
	t.Helper()
	p, err := b.sched.Pool(context.Background(), name)
	require.NoError(t, err)
	return p
}

func TestPoolFullRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.submitTask(t, "gpu", `{}`, http.StatusCreated)
	b.submitTask(t, "gpu", `{}`, http.StatusCreated)
	code, hdr, out := b.do(t, "tok-acme", "POST", "/v1/pools/gpu/tasks", `{"key":"k1"}`)
	b.errorOf(t, code, out, http.StatusTooManyRequests, api.CodePoolFull, "")
	require.Equal(t, "1", hdr.Get("Retry-After"))
	rej := decode[api.Error](t, out).Task
	require.NotNil(t, rej)
	require.Equal(t, "rejected", rej.State)
	// A replay of the rejected submission returns it again, as it was.
	code, _, out = b.do(t, "tok-acme", "POST", "/v1/pools/gpu/tasks", `{"key":"k1"}`)
	require.Equal(t, http.StatusOK, code, "%s", out)
	require.Equal(t, *rej, decode[api.TaskBody](t, out).Task)
}

func TestTokenAuth(t *testing.T) {
	t.Parallel()
	req := func(remote, authz string) *http.Request {
		r := httptest.NewRequest("GET", "/v1/pools", nil)
		r.RemoteAddr = remote
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		return r
	}
	open := httpapi.NewTokenAuth(nil)
	for _, remote := range []string{"127.0.0.1:4000", "[::1]:4000", "127.9.9.9:1"} {
		id, err := open.Identify(req(remote, ""))
		require.NoError(t, err, remote)
		require.Equal(t, httpapi.TenantIdentity("default"), id)
	}
	for _, remote := range []string{"10.0.0.1:4000", "[2001:db8::1]:80", "", "localhost:80"} {
		_, err := open.Identify(req(remote, "Bearer anything"))
		require.ErrorIs(t, err, httpapi.ErrNotLoopback, remote)
	}

	tok := httpapi.NewTokenAuth(map[string]string{"s3cret": "acme", "other": "globex"})
	for authz, want := range map[string]string{"Bearer s3cret": "acme", "bearer other": "globex", "BEARER  s3cret ": "acme"} {
		id, err := tok.Identify(req("10.0.0.1:4000", authz))
		require.NoError(t, err, authz)
		require.Equal(t, httpapi.TenantIdentity(want), id, authz)
	}
	for authz, want := range map[string]error{"": httpapi.ErrNoToken, "Bearer": httpapi.ErrNoToken, "Basic s3cret": httpapi.ErrNoToken,
		"Bearer S3CRET": httpapi.ErrBadToken, "Bearer s3cret2": httpapi.ErrBadToken} {
		_, err := tok.Identify(req("127.0.0.1:4000", authz))
		require.ErrorIs(t, err, want, authz)
	}
}

func TestLoopbackOnlyWithoutTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := httpapi.New(httpapi.Options{Scheduler: b.sched})
	r := httptest.NewRequest("POST", "/v1/pools/cpu/tasks", strings.NewReader(`{}`))
	r.RemoteAddr = "127.0.0.1:5555"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	require.Equal(t, "default", decode[api.TaskBody](t, rec.Body.Bytes()).Task.Tenant)

	r = httptest.NewRequest("GET", "/v1/pools", nil)
	r.RemoteAddr = "192.0.2.7:5555"
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Equal(t, api.CodeUnauthorized, decode[api.Error](t, rec.Body.Bytes()).Error.Code)
	require.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
}

// faulty wraps the memory backend and fails or panics on task reads.
type faulty struct {
	*memstore.Store
	panics bool
}

func (f *faulty) Task(ctx context.Context, id string) (core.Task, error) {
	if f.panics {
		panic("backend exploded")
	}
	return core.Task{}, errors.New("dynamo: read task: secret connection string")
}

func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	t.Parallel()
	for _, panics := range []bool{false, true} {
		var logs bytes.Buffer
		s, err := core.New(core.Config{Backend: &faulty{Store: memstore.New(memstore.Options{}), panics: panics}})
		require.NoError(t, err)
		h := httpapi.New(httpapi.Options{
			Scheduler: s,
			Auth:      httpapi.NewTokenAuth(map[string]string{"t": "acme"}),
			Logger:    slog.New(slog.NewJSONHandler(&logs, nil)),
		})
		r := httptest.NewRequest("GET", "/v1/tasks/abc", nil)
		r.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		e := decode[api.Error](t, rec.Body.Bytes())
		require.Equal(t, api.CodeInternal, e.Error.Code)
		require.Equal(t, "internal error", e.Error.Message)
		require.NotContains(t, rec.Body.String(), "secret")
		require.NotContains(t, rec.Body.String(), "exploded")
		if panics {
			require.Contains(t, logs.String(), "backend exploded")
		} else {
			require.Contains(t, logs.String(), "secret connection string")
		}
		require.Contains(t, logs.String(), `"level":"ERROR"`)
	}
}

// damaged wraps the memory backend; its reads fail as the embedded store's
// do when they meet a value that fails its checksum.
type damaged struct{ *memstore.Store }

func (damaged) fault() error {
	return fmt.Errorf("pebblestore: get: pebblestore: *core.Task: %w: checksum mismatch in /srv/secret-dir/000042.sst", pebblestore.ErrCorrupt)
}

func (d damaged) Task(context.Context, string) (core.Task, error) { return core.Task{}, d.fault() }

func (d damaged) Messages(context.Context, string, string, core.Cursor, int) ([]core.Message, error) {
	return nil, d.fault()
}

func (d damaged) Pools(context.Context) ([]core.Pool, error) { return nil, d.fault() }

// A read that meets damaged data is a 500 that says so, naming the store,
// without the details (the file), which are logged.
func TestCorruptStoreIsNamed(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s, err := core.New(core.Config{Backend: damaged{memstore.New(memstore.Options{})}})
	require.NoError(t, err)
	h := httpapi.New(httpapi.Options{
		Scheduler: s,
		Auth:      httpapi.NewTokenAuth(map[string]string{"t": "acme"}),
		Logger:    slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	for _, path := range []string{"/v1/tasks/abc", "/v1/mailbox/acme", "/v1/pools"} {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		require.Equal(t, http.StatusInternalServerError, rec.Code, path)
		e := decode[api.Error](t, rec.Body.Bytes())
		require.Equal(t, api.CodeInternal, e.Error.Code, path)
		require.Equal(t, "embedded store: data file is corrupt", e.Error.Message, path)
		require.NotContains(t, rec.Body.String(), "secret-dir", path)
		require.NotContains(t, rec.Body.String(), `"task"`, path)
		require.NotContains(t, rec.Body.String(), `"messages"`, path)
	}
	require.Contains(t, logs.String(), "checksum mismatch in /srv/secret-dir/000042.sst")
}

func TestBodyOverLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := `{"payload":"` + strings.Repeat("x", 1<<20) + `"}`
	code, _, out := b.do(t, "tok-acme", "POST", "/v1/pools/cpu/tasks", body)
	b.errorOf(t, code, out, http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge, "body")
	// A payload of exactly the limit is accepted.
	exact := `"` + strings.Repeat("x", core.MaxPayloadBytes-2) + `"`
	got := b.submitTask(t, "cpu", `{"payload":`+exact+`}`, http.StatusCreated)
	require.Len(t, got.Payload, core.MaxPayloadBytes)
	code, _, out = b.do(t, "tok-acme", "POST", "/v1/pools/cpu/tasks", `{"payload":"x`+exact[1:]+`}`)
	b.errorOf(t, code, out, http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge, "payload")
	require.Equal(t, 1, b.pool(t, "cpu").Running)
}

func TestNullMeansAbsent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	got := b.submitTask(t, "cpu", `{"payload":null,"key":"n"}`, http.StatusCreated)
	require.Nil(t, got.Payload)
	// The same submission without the null field is a replay.
	again := b.submitTask(t, "cpu", `{"key":"n"}`, http.StatusOK)
	require.Equal(t, got.ID, again.ID)
}

func TestLongPollEndsWithTheClient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, "GET", "/v1/mailbox/idle?wait=20s", nil)
	r.Header.Set("Authorization", "Bearer tok-acme")
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.h.ServeHTTP(rec, r)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll outlived its request")
	}
	require.Less(t, rec.Code, 500, rec.Body.String())
}

func TestAuditWindowOnSchedulerClock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	t0 := b.clock.Now()
	first := b.submitTask(t, "cpu", `{}`, http.StatusCreated)
	b.clock.Advance(time.Hour)
	t1 := b.clock.Now()
	second := b.submitTask(t, "cpu", `{}`, http.StatusCreated)
	ids := func(query string) []string {
		t.Helper()
		code, _, out := b.do(t, "tok-acme", "GET", "/v1/audit"+query, "")
		require.Equal(t, http.StatusOK, code, "%s", out)
		var got []string
		for _, e := range decode[api.AuditPage](t, out).Events {
			got = append(got, e.TaskID)
		}
		return got
	}
	f := func(ts time.Time) string { return ts.Format(time.RFC3339Nano) }
	require.Equal(t, []string{first.ID, second.ID}, ids(""))
	require.Equal(t, []string{first.ID}, ids("?from="+f(t0)+"&to="+f(t1)))
	require.Equal(t, []string{second.ID}, ids("?from="+f(t1)))
	require.Empty(t, ids("?to="+f(t0)))
	// The default window is the last 24 hours.
	b.clock.Advance(23 * time.Hour)
	require.Equal(t, []string{second.ID}, ids(""))
	code, _, out := b.do(t, "tok-acme", "GET", "/v1/audit?from="+f(t0.Add(-31*24*time.Hour)), "")
	b.errorOf(t, code, out, http.StatusBadRequest, api.CodeInvalidRequest, "to")
}

func TestMatch(t *testing.T) {
	t.Parallel()
	rt, p, allowed, ok := httpapi.Match(http.MethodPost, "/v1/tasks/abc%2Fd/complete")
	require.True(t, ok)
	require.Equal(t, httpapi.RouteComplete, rt.ID)
	require.Equal(t, "POST /v1/tasks/{id}/complete", rt.Key())
	require.Nil(t, allowed)
	require.Equal(t, httpapi.Params{"id": "abc%2Fd"}, p, "kept escaped")
	require.NoError(t, p.Unescape())
	require.Equal(t, httpapi.Params{"id": "abc/d"}, p)

	_, p, allowed, ok = httpapi.Match(http.MethodDelete, "/v1/tasks/%ZZ")
	require.False(t, ok)
	require.Equal(t, []string{http.MethodGet}, allowed)
	var inv *core.InvalidError
	require.ErrorAs(t, p.Unescape(), &inv)
	require.Equal(t, "id", inv.Field)
	require.Equal(t, httpapi.Params{"id": "%ZZ"}, p, "an escape that does not decode is left as it is")

	p = httpapi.Params{"recipient": "%FF"}
	require.ErrorAs(t, p.Unescape(), &inv)
	require.Equal(t, "recipient", inv.Field)
	require.Equal(t, httpapi.Params{"recipient": "\xff"}, p)

	_, _, allowed, ok = httpapi.Match(http.MethodGet, "/v1/tasks//cancel")
	require.False(t, ok)
	require.Empty(t, allowed)

	ids := map[httpapi.RouteID]bool{}
	for _, rt := range httpapi.Routes() {
		require.False(t, ids[rt.ID], "route id %s is taken twice", rt.ID)
		ids[rt.ID] = true
		got, _, _, ok := httpapi.Match(rt.Method, strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(rt.Path, "{pool}", "p"), "{id}", "i"), "{recipient}", "r"))
		require.True(t, ok, rt.Key())
		require.Equal(t, rt, got)
	}
}
