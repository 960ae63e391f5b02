package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// semaphore serves a permit pool "sem" of capacity 1 with a sweeper, and
// returns acme's client and the scheduler.
func semaphore(t *testing.T, maxParked int, runTimeout time.Duration) (*client.Client, *core.Scheduler) {
	t.Helper()
	sched, err := core.New(core.Config{Backend: memstore.New(memstore.Options{}), MailboxPoll: 10 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, sched.PutPool(context.Background(), core.PoolConfig{Name: "sem", Capacity: 1, MaxParked: maxParked, DefaultMaxWait: time.Minute, RunTimeout: runTimeout}))
	ctx, stop := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for ctx.Err() == nil {
			_, _ = sched.Sweep(ctx)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Scheduler: sched, Auth: httpapi.NewTokenAuth(map[string]string{"a-token": "acme"})}))
	t.Cleanup(func() {
		stop()
		<-swept
		srv.Close()
	})
	c, err := client.New(srv.URL, "a-token", client.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	return c, sched
}

func TestAcquireRelease(t *testing.T) {
	t.Parallel()
	c, _ := semaphore(t, 5, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()

	first, err := c.Acquire(ctx, "sem", client.AcquireOptions{Payload: json.RawMessage(`{"job":1}`), Recipient: "shared"})
	require.NoError(t, err)
	require.Equal(t, "running", first.Task.State)

	// The second waits for the first's slot, sharing its recipient.
	got := make(chan *client.Permit, 1)
	errc := make(chan error, 1)
	go func() {
		p, err := c.Acquire(ctx, "sem", client.AcquireOptions{Recipient: "shared"})
		errc <- err
		got <- p
	}()
	// It is parked before the first releases: the pool shows it.
	require.Eventually(t, func() bool {
		p, err := c.Pool(ctx, "sem")
		return err == nil && p.Parked == 1
	}, time.Minute, 5*time.Millisecond)
	require.NoError(t, first.Release(ctx, json.RawMessage(`{"ok":true}`)))
	require.NoError(t, <-errc)
	second := <-got
	require.Equal(t, "running", second.Task.State)
	done, err := c.Task(ctx, first.Task.ID)
	require.NoError(t, err)
	require.Equal(t, "succeeded", done.State)
	require.JSONEq(t, `{"ok":true}`, string(done.Result))
	require.Error(t, first.Release(ctx, nil), "a permit is released once")

	require.NoError(t, second.Fail(ctx, "gave up"))
	ended, err := c.Task(ctx, second.Task.ID)
	require.NoError(t, err)
	require.Equal(t, "failed", ended.State)
	require.Equal(t, "gave up", ended.Error)
}

func TestAcquireRefusals(t *testing.T) {
	t.Parallel()
	c, _ := semaphore(t, 1, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	holder, err := c.Acquire(ctx, "sem", client.AcquireOptions{})
	require.NoError(t, err)

	// Parked past its deadline: expired.
	_, err = c.Acquire(ctx, "sem", client.AcquireOptions{MaxWait: 50 * time.Millisecond})
	require.ErrorIs(t, err, client.ErrExpired)

	// The caller gives up: the parked task is cancelled.
	short, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Acquire(short, "sem", client.AcquireOptions{Key: "given-up"})
		errc <- err
	}()
	require.Eventually(t, func() bool {
		p, err := c.Pool(ctx, "sem")
		return err == nil && p.Parked == 1
	}, time.Minute, 5*time.Millisecond)

	// The parked depth is full: rejected, with Retry-After.
	_, err = c.Acquire(ctx, "sem", client.AcquireOptions{})
	require.ErrorIs(t, err, client.ErrRejected)
	var apiErr *client.Error
	require.True(t, errors.As(err, &apiErr))
	require.Positive(t, apiErr.RetryAfter)

	stop()
	require.ErrorIs(t, <-errc, context.Canceled)
	res, err := c.Submit(ctx, "sem", api.SubmitRequest{Key: "given-up"})
	require.NoError(t, err)
	require.True(t, res.Replayed)
	require.Equal(t, "cancelled", res.Task.State, "the abandoned task is cancelled, not left to take the slot")
	require.NoError(t, holder.Release(ctx, nil))
}

func TestPermitHeartbeats(t *testing.T) {
	t.Parallel()
	c, _ := semaphore(t, 1, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	defer cancel()
	p, err := c.Acquire(ctx, "sem", client.AcquireOptions{})
	require.NoError(t, err)
	start := *p.Task.LeaseExpiresAt
	// The permit renews its lease a third of the way through it.
	require.Eventually(t, func() bool {
		cur, err := c.Task(ctx, p.Task.ID)
		return err == nil && cur.LeaseExpiresAt.After(start)
	}, time.Minute, 50*time.Millisecond)
	select {
	case <-p.Lost():
		t.Fatalf("lease lost: %v", p.Err())
	default:
	}
	require.NoError(t, p.Release(ctx, nil))

	// A permit whose task is cancelled by someone else loses its lease (at
	// its next heartbeat, a third of the way through the lease).
	q, err := c.Acquire(ctx, "sem", client.AcquireOptions{RunTimeout: 3 * time.Second})
	require.NoError(t, err)
	_, err = c.Cancel(ctx, q.Task.ID)
	require.NoError(t, err)
	select {
	case <-q.Lost():
		require.ErrorIs(t, q.Err(), &client.Error{Code: api.CodeLeaseLost})
	case <-ctx.Done():
		t.Fatal("the lost lease went unnoticed")
	}
}
