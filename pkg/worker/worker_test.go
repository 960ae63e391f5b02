package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server serves a pull pool "jobs" of capacity, with a sweeper, and
// returns a tenant's client and a worker's client of the pool.
func server(t *testing.T, capacity int, runTimeout time.Duration) (tenant, work *client.Client) {
	t.Helper()
	sched, err := core.New(core.Config{Backend: memstore.New(memstore.Options{}), MailboxPoll: 10 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, sched.PutPool(context.Background(), core.PoolConfig{
		Name: "jobs", Capacity: capacity, MaxParked: 1000, DefaultMaxWait: time.Hour, RunTimeout: runTimeout, Executor: core.ExecutorPull,
	}))
	ctx, stop := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for ctx.Err() == nil {
			_, _ = sched.Sweep(ctx)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Scheduler: sched, Auth: httpapi.NewIdentityAuth(map[string]httpapi.Identity{
		"t-token": httpapi.TenantIdentity("acme"),
		"w-token": httpapi.WorkerIdentity("w1", "jobs"),
	})}))
	t.Cleanup(func() {
		stop()
		<-swept
		srv.CloseClientConnections()
		srv.Close()
	})
	tenant, err = client.New(srv.URL, "t-token", client.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	work, err = client.New(srv.URL, "w-token", client.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	return tenant, work
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestRun: every task runs once, never more than the pool's capacity at
// once (observed by the handlers themselves), and ends with its handler's
// outcome: a result, an error, a panic.
func TestRun(t *testing.T) {
	t.Parallel()
	const capacity, tasks = 3, 60
	tenant, work := server(t, capacity, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()
	ids := map[string]int{}
	for i := range tasks {
		res, err := tenant.Submit(ctx, "jobs", api.SubmitRequest{Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		require.NoError(t, err)
		require.Equal(t, "parked", res.Task.State)
		ids[res.Task.ID] = i
	}
	var (
		mu      sync.Mutex
		running int
		peak    int
		entries = map[string]int{}
		all     = make(chan struct{})
	)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(runCtx, work, worker.Options{Pool: "jobs", Concurrency: 5, ClaimWait: time.Second, Logger: quiet()},
			func(ctx context.Context, task *worker.Task) (any, error) {
				var in struct{ N int }
				if err := task.Decode(&in); err != nil {
					return nil, err
				}
				mu.Lock()
				running++
				peak = max(peak, running)
				entries[task.ID]++
				if len(entries) == tasks {
					close(all)
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				running--
				mu.Unlock()
				switch in.N {
				case 7:
					return nil, errors.New("seven fails")
				case 8:
					panic("eight panics")
				}
				return map[string]int{"double": 2 * in.N}, nil
			})
	}()
	<-all
	// Every outcome is in, then shut down.
	for id := range ids {
		require.Eventually(t, func() bool {
			task, err := tenant.Task(ctx, id)
			return err == nil && (task.State == "succeeded" || task.State == "failed")
		}, time.Minute, 5*time.Millisecond)
	}
	stop()
	require.NoError(t, <-done)

	require.LessOrEqual(t, peak, capacity, "handlers running at once")
	require.Len(t, entries, tasks)
	for id, n := range entries {
		require.Equal(t, 1, n, "task %s ran %d times", id, n)
	}
	for id, i := range ids {
		task, err := tenant.Task(ctx, id)
		require.NoError(t, err)
		switch i {
		case 7:
			require.Equal(t, "failed", task.State)
			require.Equal(t, "seven fails", task.Error)
		case 8:
			require.Equal(t, "failed", task.State)
			require.Equal(t, "panic: eight panics", task.Error)
		default:
			require.Equal(t, "succeeded", task.State, id)
			require.JSONEq(t, fmt.Sprintf(`{"double":%d}`, 2*i), string(task.Result))
		}
	}
}

// TestLeaseLost: a task cancelled while its handler runs ends the
// handler's context, and the worker sends no completion.
func TestLeaseLost(t *testing.T) {
	t.Parallel()
	tenant, work := server(t, 1, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()
	res, err := tenant.Submit(ctx, "jobs", api.SubmitRequest{})
	require.NoError(t, err)
	started := make(chan struct{})
	ended := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(runCtx, work, worker.Options{Pool: "jobs", HeartbeatEvery: 20 * time.Millisecond, ClaimWait: time.Second, Logger: quiet()},
			func(ctx context.Context, _ *worker.Task) (any, error) {
				close(started)
				<-ctx.Done()
				ended <- ctx.Err()
				return "late", nil
			})
	}()
	<-started
	_, err = tenant.Cancel(ctx, res.Task.ID)
	require.NoError(t, err)
	require.ErrorIs(t, <-ended, context.Canceled)
	stop()
	require.NoError(t, <-done)
	task, err := tenant.Task(ctx, res.Task.ID)
	require.NoError(t, err)
	require.Equal(t, "cancelled", task.State)
	require.Empty(t, task.Result, "no completion after the lease was lost")
}

// TestShutdown: Run stops claiming, waits for the running handlers up to
// the timeout (long enough for the quick one on a loaded machine), then
// leaves the task of the one still running to lease expiry.
func TestShutdown(t *testing.T) {
	t.Parallel()
	tenant, work := server(t, 2, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()
	quick, err := tenant.Submit(ctx, "jobs", api.SubmitRequest{Payload: json.RawMessage(`"quick"`)})
	require.NoError(t, err)
	stuck, err := tenant.Submit(ctx, "jobs", api.SubmitRequest{Payload: json.RawMessage(`"stuck"`)})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(2)
	release := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(runCtx, work, worker.Options{Pool: "jobs", Concurrency: 2, ShutdownTimeout: 5 * time.Second, ClaimWait: time.Second, Logger: quiet()},
			func(ctx context.Context, task *worker.Task) (any, error) {
				var which string
				_ = task.Decode(&which)
				wg.Done()
				if which == "quick" {
					<-release
					return "done", nil
				}
				<-ctx.Done() // only the shutdown timeout ends it
				return nil, ctx.Err()
			})
	}()
	wg.Wait()
	stop()
	close(release) // the quick one finishes during the shutdown
	require.ErrorIs(t, <-done, worker.ErrShutdownTimeout)
	require.Eventually(t, func() bool {
		task, err := tenant.Task(ctx, quick.Task.ID)
		return err == nil && task.State == "succeeded"
	}, time.Minute, 5*time.Millisecond, "a handler that returns during the shutdown completes its task")
	task, err := tenant.Task(ctx, stuck.Task.ID)
	require.NoError(t, err)
	require.Equal(t, "running", task.State, "left to lease expiry")
}

func TestOptions(t *testing.T) {
	t.Parallel()
	_, work := server(t, 1, time.Minute)
	h := func(context.Context, *worker.Task) (any, error) { return nil, nil }
	for _, c := range []struct {
		o    worker.Options
		want string
	}{
		{worker.Options{}, "Pool is required"},
		{worker.Options{Pool: "jobs", Concurrency: -1}, "Concurrency"},
		{worker.Options{Pool: "jobs", ClaimWait: time.Minute}, "ClaimWait"},
	} {
		err := worker.Run(context.Background(), work, c.o, h)
		require.ErrorContains(t, err, c.want)
	}
	require.ErrorContains(t, worker.Run(context.Background(), work, worker.Options{Pool: "jobs"}, nil), "handler")
	require.True(t, strings.HasPrefix(worker.ErrShutdownTimeout.Error(), "worker:"))
}
