package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type bundle struct {
	acme, globex *client.Client
	url          string
}

func setup(t *testing.T) bundle {
	t.Helper()
	sched, err := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	require.NoError(t, err)
	require.NoError(t, sched.PutPool(context.Background(), core.PoolConfig{Name: "gpu", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}))
	srv := httptest.NewServer(httpapi.New(httpapi.Options{
		Scheduler: sched,
		Auth:      httpapi.NewTokenAuth(map[string]string{"a-token": "acme", "g-token": "globex"}),
	}))
	t.Cleanup(srv.Close)
	hc := srv.Client()
	acme, err := client.New(srv.URL, "a-token", client.WithHTTPClient(hc))
	require.NoError(t, err)
	globex, err := client.New(srv.URL+"/", "g-token", client.WithHTTPClient(hc))
	require.NoError(t, err)
	return bundle{acme: acme, globex: globex, url: srv.URL}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	a, err := b.acme.Submit(ctx, "gpu", api.SubmitRequest{Key: "k1", Payload: json.RawMessage(`{"n":1}`)})
	require.NoError(t, err)
	require.False(t, a.Replayed)
	require.Equal(t, "running", a.Task.State)
	require.NotEmpty(t, a.Task.Lease)
	require.Equal(t, "acme", a.Task.Tenant)

	again, err := b.acme.Submit(ctx, "gpu", api.SubmitRequest{Key: "k1", Payload: json.RawMessage(`{"n":1}`)})
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, a.Task.ID, again.Task.ID)

	_, err = b.acme.Submit(ctx, "gpu", api.SubmitRequest{Key: "k1", Payload: json.RawMessage(`{"n":2}`)})
	require.Equal(t, api.CodeKeyConflict, client.Code(err))
	require.Equal(t, http.StatusConflict, client.StatusOf(err))

	p, err := b.acme.Submit(ctx, "gpu", api.SubmitRequest{})
	require.NoError(t, err)
	require.Equal(t, "parked", p.Task.State)

	_, err = b.acme.Submit(ctx, "gpu", api.SubmitRequest{})
	var ce *client.Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, http.StatusTooManyRequests, ce.Status)
	require.Equal(t, api.CodePoolFull, ce.Code)
	require.NotNil(t, ce.Task)
	require.Equal(t, "rejected", ce.Task.State)
	require.Positive(t, ce.RetryAfter)
	require.ErrorIs(t, err, &client.Error{Code: api.CodePoolFull})
	require.NotErrorIs(t, err, &client.Error{Code: api.CodeLeaseLost})

	until, err := b.acme.Heartbeat(ctx, a.Task.ID, a.Task.Lease, 2*time.Minute)
	require.NoError(t, err)
	require.True(t, until.After(time.Now().Add(time.Minute)))

	_, err = b.acme.Complete(ctx, a.Task.ID, api.CompleteRequest{Lease: "wrong", Status: "succeeded"})
	require.Equal(t, api.CodeLeaseLost, client.Code(err))

	done, err := b.acme.Complete(ctx, a.Task.ID, api.CompleteRequest{Lease: a.Task.Lease, Status: "succeeded", Result: json.RawMessage(`"ok"`)})
	require.NoError(t, err)
	require.Equal(t, a.Task.ID, done.ID)
	require.Equal(t, "succeeded", done.State)
	require.JSONEq(t, `"ok"`, string(done.Result))

	woken, err := b.acme.Task(ctx, p.Task.ID)
	require.NoError(t, err)
	require.Equal(t, p.Task.ID, woken.ID)
	require.Equal(t, "running", woken.State)

	c, err := b.acme.Cancel(ctx, p.Task.ID)
	require.NoError(t, err)
	require.Equal(t, p.Task.ID, c.ID)
	require.Equal(t, "cancelled", c.State)

	page, err := b.acme.Mailbox(ctx, "acme", client.MailboxOptions{Limit: 100})
	require.NoError(t, err)
	var types []string
	for _, m := range page.Messages {
		types = append(types, m.Type)
	}
	require.Equal(t, []string{"started", "rejected", "succeeded", "started", "cancelled"}, types)
	require.NoError(t, b.acme.Ack(ctx, "acme", page.Next))
	empty, err := b.acme.Mailbox(ctx, "acme", client.MailboxOptions{Wait: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, empty.Messages)

	ev, err := b.acme.Audit(ctx, client.AuditQuery{Task: p.Task.ID})
	require.NoError(t, err)
	var trail []string
	for _, e := range ev.Events {
		trail = append(trail, e.From+">"+e.To)
	}
	require.Equal(t, []string{">parked", "parked>running", "running>cancelled"}, trail)

	pools, err := b.acme.Pools(ctx)
	require.NoError(t, err)
	require.Equal(t, []api.Pool{{Name: "gpu", Executor: "permit", Capacity: 1, MaxParked: 1}}, pools)
	pool, err := b.acme.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, "gpu", pool.Name)
	_, err = b.acme.Pool(ctx, "nope")
	require.Equal(t, http.StatusNotFound, client.StatusOf(err))
}

func TestTenantIsolationAndAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a, err := b.acme.Submit(ctx, "gpu", api.SubmitRequest{})
	require.NoError(t, err)
	_, err = b.globex.Task(ctx, a.Task.ID)
	require.Equal(t, api.CodeNotFound, client.Code(err))

	anon, err := client.New(b.url, "bad-token")
	require.NoError(t, err)
	_, err = anon.Pools(ctx)
	require.Equal(t, http.StatusUnauthorized, client.StatusOf(err))
	require.Equal(t, api.CodeUnauthorized, client.Code(err))
}

func TestInvalidField(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.acme.Submit(context.Background(), "gpu", api.SubmitRequest{MaxWait: "soon"})
	var ce *client.Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, http.StatusBadRequest, ce.Status)
	require.Equal(t, "maxWait", ce.Field)
	require.Contains(t, ce.Error(), "invalid_request (maxWait)")
}

func TestNewRejectsBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		_, err := client.New(u, "")
		require.Error(t, err, u)
	}
}

func TestNotAnAPIError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "")
	require.NoError(t, err)
	_, err = c.Pools(context.Background())
	var ce *client.Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, http.StatusBadGateway, ce.Status)
	require.Empty(t, ce.Code)
	require.Equal(t, "bad gateway", ce.Message)
	c.CloseIdleConnections()
}
