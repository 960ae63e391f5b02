package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/httpapi/httpapitest"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parkinglot-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if bin, err = testserver.BuildMain(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const twoTenants = `
listen: 127.0.0.1:0
store: {type: memory}
sweepInterval: 20ms
shutdownTimeout: 10s
log: {level: debug, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
`

const twoPools = `
pools:
  - {name: gpu, capacity: 1, maxParked: 1, defaultMaxWait: 1m, runTimeout: 1m}
  - {name: cpu, capacity: 2, maxParked: 10, defaultMaxWait: 1m, runTimeout: 300ms}
`

type bundle struct {
	srv          *testserver.Server
	acme, globex *client.Client
}

func setup(t *testing.T) bundle {
	t.Helper()
	srv := testserver.Start(t, bin, twoTenants+twoPools)
	acme, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	globex, err := client.New(srv.URL, "globex-token")
	require.NoError(t, err)
	t.Cleanup(acme.CloseIdleConnections)
	t.Cleanup(globex.CloseIdleConnections)
	return bundle{srv: srv, acme: acme, globex: globex}
}

// TestContract runs the HTTP API v1 contract suite against the binary.
func TestContract(t *testing.T) {
	t.Parallel()
	httpapitest.Run(t, func(t *testing.T, pools []core.PoolConfig) httpapitest.Target {
		srv := testserver.Start(t, bin, twoTenants+httpapitest.WorkerTokenYAML("worker-token")+httpapitest.PoolsYAML(pools))
		hc := &http.Client{Transport: &http.Transport{}}
		t.Cleanup(hc.CloseIdleConnections)
		return httpapitest.Target{BaseURL: srv.URL, AcmeToken: "acme-token", GlobexToken: "globex-token", WorkerToken: "worker-token", Client: hc}
	})
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	// Submit: runs at once; the next parks; the one after is rejected.
	a, err := b.acme.Submit(ctx, "gpu", api.SubmitRequest{Payload: json.RawMessage(`{"job":"a"}`)})
	require.NoError(t, err)
	require.Equal(t, "running", a.Task.State)
	p, err := b.acme.Submit(ctx, "gpu", api.SubmitRequest{Recipient: "worker"})
	require.NoError(t, err)
	require.Equal(t, "parked", p.Task.State)
	_, err = b.acme.Submit(ctx, "gpu", api.SubmitRequest{})
	require.Equal(t, http.StatusTooManyRequests, client.StatusOf(err))
	require.Equal(t, api.CodePoolFull, client.Code(err))

	pool, err := b.acme.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, api.Pool{Name: "gpu", Executor: "permit", Capacity: 1, Running: 1, Parked: 1, MaxParked: 1}, pool)

	// The started message carries the lease; completing wakes the parked task.
	page, err := b.acme.Mailbox(ctx, "acme", client.MailboxOptions{})
	require.NoError(t, err)
	require.Len(t, page.Messages, 2)
	require.Equal(t, "started", page.Messages[0].Type)
	require.Equal(t, a.Task.Lease, page.Messages[0].Lease)
	require.Equal(t, "rejected", page.Messages[1].Type)

	_, err = b.acme.Complete(ctx, a.Task.ID, api.CompleteRequest{Lease: "not-the-lease", Status: "succeeded"})
	require.Equal(t, api.CodeLeaseLost, client.Code(err))
	done, err := b.acme.Complete(ctx, a.Task.ID, api.CompleteRequest{Lease: a.Task.Lease, Status: "succeeded", Result: json.RawMessage(`42`)})
	require.NoError(t, err)
	require.Equal(t, a.Task.ID, done.ID)
	require.Equal(t, "succeeded", done.State)

	// The woken task's started message reaches its recipient's long poll.
	wp, err := b.acme.Mailbox(ctx, "worker", client.MailboxOptions{Wait: 5 * time.Second})
	require.NoError(t, err)
	require.Len(t, wp.Messages, 1)
	require.Equal(t, "started", wp.Messages[0].Type)
	require.Equal(t, p.Task.ID, wp.Messages[0].TaskID)
	require.NoError(t, b.acme.Ack(ctx, "worker", wp.Next))
	again, err := b.acme.Mailbox(ctx, "worker", client.MailboxOptions{})
	require.NoError(t, err)
	require.Empty(t, again.Messages)

	// Cancel the woken task: its slot frees and its outcome is delivered.
	c, err := b.acme.Cancel(ctx, p.Task.ID)
	require.NoError(t, err)
	require.Equal(t, p.Task.ID, c.ID)
	require.Equal(t, "cancelled", c.State)
	_, err = b.acme.Cancel(ctx, a.Task.ID)
	require.Equal(t, http.StatusConflict, client.StatusOf(err))
	out, err := b.acme.Mailbox(ctx, "worker", client.MailboxOptions{After: wp.Next})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	require.Equal(t, "cancelled", out.Messages[0].Type)

	// The audit trail has every transition of the woken task, in order.
	ev, err := b.acme.Audit(ctx, client.AuditQuery{Task: p.Task.ID})
	require.NoError(t, err)
	var trail []string
	for _, e := range ev.Events {
		trail = append(trail, e.Type+":"+e.From+">"+e.To)
	}
	require.Equal(t, []string{"submit:>parked", "start:parked>running", "cancel:running>cancelled"}, trail)

	// Tenant isolation: globex sees none of it.
	_, err = b.globex.Task(ctx, a.Task.ID)
	require.Equal(t, http.StatusNotFound, client.StatusOf(err))
	gev, err := b.globex.Audit(ctx, client.AuditQuery{})
	require.NoError(t, err)
	require.Empty(t, gev.Events)

	// A lease that is not renewed ends: the sweeper times the task out.
	r, err := b.globex.Submit(ctx, "cpu", api.SubmitRequest{})
	require.NoError(t, err)
	require.Equal(t, "running", r.Task.State)
	to, err := b.globex.Mailbox(ctx, "globex", client.MailboxOptions{After: "", Limit: 10})
	require.NoError(t, err)
	require.Len(t, to.Messages, 1)
	last, err := b.globex.Mailbox(ctx, "globex", client.MailboxOptions{After: to.Next, Wait: 10 * time.Second})
	require.NoError(t, err)
	require.Len(t, last.Messages, 1)
	require.Equal(t, "timed_out", last.Messages[0].Type)
	_, err = b.globex.Heartbeat(ctx, r.Task.ID, r.Task.Lease, 0)
	require.Equal(t, api.CodeLeaseLost, client.Code(err))

	require.Equal(t, 0, b.srv.Stop(t, 15*time.Second))
	require.Contains(t, b.srv.Log(), `"msg":"stopped"`)
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	send := func(method, path, token, body string) (int, api.Error) {
		req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var e api.Error
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 {
			require.NoError(t, json.Unmarshal(raw, &e), "%s", raw)
		}
		return resp.StatusCode, e
	}
	cases := []struct {
		method, path, token, body string
		status                    int
		code, field               string
	}{
		{"GET", "/v1/pools", "", "", 401, api.CodeUnauthorized, ""},
		{"GET", "/v1/pools", "wrong", "", 401, api.CodeUnauthorized, ""},
		{"POST", "/v1/pools/nope/tasks", "acme-token", `{}`, 404, api.CodePoolNotFound, ""},
		{"POST", "/v1/pools/gpu/tasks", "acme-token", `{"maxWait":"soon"}`, 400, api.CodeInvalidRequest, "maxWait"},
		{"POST", "/v1/pools/gpu/tasks", "acme-token", `{"bogus":1}`, 400, api.CodeInvalidRequest, "bogus"},
		{"POST", "/v1/pools/gpu/tasks", "acme-token", `{`, 400, api.CodeInvalidRequest, ""},
		{"GET", "/v1/tasks/nope", "acme-token", "", 404, api.CodeNotFound, ""},
		{"GET", "/v1/mailbox/acme?wait=1h", "acme-token", "", 400, api.CodeInvalidRequest, "wait"},
		{"DELETE", "/v1/pools", "acme-token", "", 405, api.CodeMethodNotAllowed, ""},
	}
	for _, tc := range cases {
		status, e := send(tc.method, tc.path, tc.token, tc.body)
		require.Equal(t, tc.status, status, "%s %s %s", tc.method, tc.path, tc.body)
		require.Equal(t, tc.code, e.Error.Code, "%s %s %s", tc.method, tc.path, tc.body)
		if tc.field != "" {
			require.Equal(t, tc.field, e.Error.Field, "%s %s %s", tc.method, tc.path, tc.body)
		}
	}
	// Nothing was created by the bad requests.
	pools, err := b.acme.Pools(context.Background())
	require.NoError(t, err)
	for _, p := range pools {
		require.Zero(t, p.Running+p.Parked, p.Name)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a, err := b.acme.Submit(ctx, "cpu", api.SubmitRequest{})
	require.NoError(t, err)
	_, err = b.acme.Submit(ctx, "cpu", api.SubmitRequest{})
	require.NoError(t, err)
	_, err = b.acme.Submit(ctx, "cpu", api.SubmitRequest{})
	require.NoError(t, err)
	_, err = b.acme.Complete(ctx, a.Task.ID, api.CompleteRequest{Lease: a.Task.Lease, Status: "failed", Error: "boom"})
	require.NoError(t, err)

	get := func(path string) string {
		resp, err := http.Get(b.srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(body)
	}
	require.True(t, strings.HasPrefix(get("/healthz"), "ok\nversion: "))
	m := get("/metrics")
	for _, want := range []string{
		`parkinglot_pool_capacity{pool="cpu"} 2`,
		`parkinglot_pool_capacity{pool="gpu"} 1`,
		`parkinglot_pool_running{pool="cpu"} 2`,
		`parkinglot_pool_parked{pool="cpu"} 0`,
		`parkinglot_pool_max_parked{pool="cpu"} 10`,
		`parkinglot_task_outcomes_total{outcome="failed",pool="cpu"} 1`,
		`parkinglot_task_starts_total{kind="immediate",pool="cpu"} 2`,
		`parkinglot_task_starts_total{kind="wake",pool="cpu"} 1`,
		`parkinglot_wake_latency_seconds_count{pool="cpu"} 1`,
		`parkinglot_wake_latency_seconds_bucket{pool="cpu",le="0.0001"}`,
		`parkinglot_pool_scrape_ok 1`,
		`parkinglot_http_requests_total{code="201",method="post"} 3`,
	} {
		require.Contains(t, m, want)
	}
}

func TestShutdownEndsLongPolls(t *testing.T) {
	t.Parallel()
	b := setup(t)
	polled := make(chan error, 1)
	var page api.MailboxPage
	go func() {
		var err error
		page, err = b.acme.Mailbox(context.Background(), "acme", client.MailboxOptions{Wait: 20 * time.Second})
		polled <- err
	}()
	// Wait until the poll is inside the handler: a request still in the
	// listener's backlog at shutdown is reset, as it should be.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrape(t, b.srv.URL), "\nparkinglot_http_requests_in_flight 1\n") {
		require.True(t, time.Now().Before(deadline), "the long poll did not reach the handler")
		select {
		case err := <-polled:
			t.Fatalf("the long poll ended early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	start := time.Now()
	require.Equal(t, 0, b.srv.Stop(t, 15*time.Second))
	require.Less(t, time.Since(start), 10*time.Second, "shutdown waited for the long poll's full wait")
	select {
	case err := <-polled:
		require.NoError(t, err, "the long poll was cut off instead of answered")
		require.Empty(t, page.Messages)
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not end with the server")
	}
}

func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"pools[1].capacity: pool b: capacity must be at least 1":       twoTenants + "pools:\n  - {name: a, capacity: 1}\n  - {name: b, capacity: 0}\n",
		"pools[0].cap: unknown field":                                  twoTenants + "pools:\n  - {name: a, cap: 1}\n",
		"auth.tokens[1].token: duplicate token":                        "auth:\n  tokens:\n    - {token: x, tenant: a}\n    - {token: x, tenant: b}\n" + twoPools,
		"auth.tokens[1].token: must not start or end with white space": "auth:\n  tokens:\n    - {token: x, tenant: a}\n    - {token: \"y \", tenant: b}\n" + twoPools,
		"readTimeout: must be positive":                                twoTenants + "readTimeout: -1s\n" + twoPools,
	}
	for want, cfg := range cases {
		path := filepath.Join(t.TempDir(), "bad.yaml")
		require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "serve", "--config", path)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "serve accepted a bad config")
		require.NotZero(t, ee.ExitCode())
		require.Contains(t, stderr.String(), want)
	}
	// A store type this build does not have fails at start-up too, and a
	// postgres store without its DSN.
	path := filepath.Join(t.TempDir(), "redis.yaml")
	require.NoError(t, os.WriteFile(path, []byte("listen: 127.0.0.1:0\nstore: {type: redis}\n"+twoPools), 0o600))
	out, err := exec.Command(bin, "serve", "--config", path).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "store.type")
	path = filepath.Join(t.TempDir(), "postgres.yaml")
	require.NoError(t, os.WriteFile(path, []byte("listen: 127.0.0.1:0\nstore: {type: postgres}\n"+twoPools), 0o600))
	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Env = append(os.Environ(), "PARKINGLOT_POSTGRES_DSN=")
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "store.dsn")
}

func TestNoTokensLoopbackOnly(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\nstore: {type: memory}\nlog: {format: json}\n"+twoPools)
	require.Contains(t, srv.Log(), `accepting loopback clients only, all as tenant \"default\"`)
	c, err := client.New(srv.URL, "")
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	res, err := c.Submit(context.Background(), "gpu", api.SubmitRequest{})
	require.NoError(t, err)
	require.Equal(t, "default", res.Task.Tenant)
	require.Equal(t, "default", res.Task.Recipient)
	require.Equal(t, 0, srv.Stop(t, 15*time.Second))
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
