package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

// settle bounds how long a test waits for its tasks to end: generous, as
// the verdict is what they end as, never how fast.
const settle = 2 * time.Minute

type harness struct {
	ctx    context.Context
	sched  *core.Scheduler
	pusher *push.Pusher
}

// newHarness runs a scheduler over the memory store with a Pusher of
// targets, one push pool per target of the given capacity.
func newHarness(t *testing.T, capacity int, targets map[string]push.Target) *harness {
	t.Helper()
	p, err := push.New(push.Options{Targets: targets, BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond})
	require.NoError(t, err)
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{}), Pusher: p})
	require.NoError(t, err)
	p.Bind(s)
	t.Cleanup(p.Close)
	for pool := range targets {
		require.NoError(t, s.PutPool(t.Context(), core.PoolConfig{
			Name: pool, Capacity: capacity, MaxParked: 10_000, DefaultMaxWait: time.Hour, RunTimeout: time.Minute, Executor: core.ExecutorPush,
		}))
	}
	return &harness{ctx: t.Context(), sched: s, pusher: p}
}

func (h *harness) submit(t *testing.T, pool string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		res, err := h.sched.Submit(h.ctx, core.SubmitRequest{Tenant: fmt.Sprint("tenant", i%3), Pool: pool, Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		require.NoError(t, err)
		ids[i] = res.Task.ID
	}
	return ids
}

// ended waits for every task of ids to end and returns them.
func (h *harness) ended(t *testing.T, ids []string) []core.Task {
	t.Helper()
	out := make([]core.Task, len(ids))
	deadline := time.Now().Add(settle)
	for i, id := range ids {
		for {
			task, err := h.sched.Backend().Task(h.ctx, id)
			require.NoError(t, err)
			if task.State.Terminal() {
				out[i] = task
				break
			}
			require.True(t, time.Now().Before(deadline), "task %s still %s (push attempts %d, %s)", id, task.State, task.PushAttempts, task.Error)
			time.Sleep(5 * time.Millisecond)
		}
	}
	return out
}

// outcomes counts the outcome messages of each task in its tenant's
// mailbox: exactly one each is the invariant.
func (h *harness) outcomes(t *testing.T, tasks []core.Task) map[string]int {
	t.Helper()
	n := map[string]int{}
	seen := map[string]bool{}
	for _, task := range tasks {
		if seen[task.Tenant] {
			continue
		}
		seen[task.Tenant] = true
		var after core.Cursor
		for {
			page, err := h.sched.Backend().Messages(h.ctx, task.Tenant, task.Tenant, after, core.MaxPageLimit)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			for _, m := range page {
				if m.Type != core.MessageStarted {
					n[m.TaskID]++
				}
			}
			after = page[len(page)-1].Cursor
		}
	}
	return n
}

// gauge counts what runs at a target at once, and the most ever.
type gauge struct {
	now, max atomic.Int64
	runs     sync.Map // task id -> *atomic.Int64
}

func (g *gauge) enter(id string) func() {
	n := g.now.Add(1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			break
		}
	}
	c, _ := g.runs.LoadOrStore(id, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	return func() { g.now.Add(-1) }
}

func TestHTTPSyncTarget(t *testing.T) {
	t.Parallel()
	const capacity, n = 4, 300
	var g gauge
	srv := httptest.NewServer(worker.HTTPHandler("s3cret", func(ctx context.Context, task *worker.Task) (any, error) {
		defer g.enter(task.ID)()
		var in struct{ N int }
		if err := task.Decode(&in); err != nil {
			return nil, err
		}
		time.Sleep(time.Millisecond)
		if in.N%10 == 7 {
			return nil, errors.New("seven")
		}
		return map[string]int{"double": 2 * in.N}, nil
	}))
	defer srv.Close()
	h := newHarness(t, capacity, map[string]push.Target{"p": {Type: push.TypeHTTP, URL: srv.URL, Secret: "s3cret"}})
	ids := h.submit(t, "p", n)
	tasks := h.ended(t, ids)

	for i, task := range tasks {
		if i%10 == 7 {
			require.Equal(t, core.StateFailed, task.State)
			require.Equal(t, "seven", task.Error)
			continue
		}
		require.Equal(t, core.StateSucceeded, task.State, task.Error)
		require.JSONEq(t, fmt.Sprintf(`{"double":%d}`, 2*i), string(task.Result))
		require.Zero(t, task.PushAttempts)
	}
	require.LessOrEqual(t, g.max.Load(), int64(capacity), "never more running at the target than the capacity")
	for id, c := range h.outcomes(t, tasks) {
		require.Equal(t, 1, c, "one outcome for %s", id)
	}
	st, err := h.sched.Pool(h.ctx, "p")
	require.NoError(t, err)
	require.Zero(t, st.Running)
	require.Zero(t, st.Parked)
}

func TestHTTPAsyncTarget(t *testing.T) {
	t.Parallel()
	var h *harness
	var g gauge
	taken := make(chan api.PushedTask, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var pt api.PushedTask
		if err := json.NewDecoder(r.Body).Decode(&pt); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		require.Equal(t, pt.ID, r.Header.Get(push.HeaderIdempotencyKey))
		w.WriteHeader(http.StatusAccepted)
		taken <- pt
	}))
	defer srv.Close()
	h = newHarness(t, 2, map[string]push.Target{"p": {Type: push.TypeHTTP, URL: srv.URL, Mode: push.ModeAsync}})
	ids := h.submit(t, "p", 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ids {
			pt := <-taken
			leave := g.enter(pt.ID)
			// The target runs the task, heartbeats and completes with the
			// lease, as a worker does.
			_, err := h.sched.Heartbeat(h.ctx, core.HeartbeatRequest{Tenant: pt.Tenant, TaskID: pt.ID, Lease: pt.Lease})
			if err == nil {
				leave()
				_, err = h.sched.Complete(h.ctx, core.CompleteRequest{Tenant: pt.Tenant, TaskID: pt.ID, Lease: pt.Lease, Status: core.StateSucceeded, Result: json.RawMessage(`"ok"`)})
			}
			if err != nil {
				t.Errorf("task %s: %v", pt.ID, err)
			}
		}
	}()
	tasks := h.ended(t, ids)
	<-done
	for _, task := range tasks {
		require.Equal(t, core.StateSucceeded, task.State)
		require.JSONEq(t, `"ok"`, string(task.Result))
	}
	require.LessOrEqual(t, g.max.Load(), int64(2))
}

func TestHTTPRetriesAndFailures(t *testing.T) {
	t.Parallel()
	// flaky answers 503 twice per task, then runs it.
	var mu sync.Mutex
	tries := map[string]int{}
	flaky := httptest.NewServer(worker.HTTPHandler("", func(ctx context.Context, task *worker.Task) (any, error) { return "ran", nil }))
	defer flaky.Close()
	flakyFront := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(push.HeaderTaskID)
		mu.Lock()
		tries[id]++
		n := tries[id]
		mu.Unlock()
		require.Equal(t, fmt.Sprint(n), r.Header.Get(push.HeaderAttempt))
		if n <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		flaky.Config.Handler.ServeHTTP(w, r)
	}))
	defer flakyFront.Close()
	var bad atomic.Int64
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad.Add(1)
		http.Error(w, `{"error":"no such job"}`, http.StatusUnprocessableEntity)
	}))
	defer refusing.Close()
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server sees the client go
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	defer hanging.Close()
	defer close(hang)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadURL := "http://" + closed.Addr().String() + "/"
	require.NoError(t, closed.Close())
	wrongSecret := httptest.NewServer(worker.HTTPHandler("right", func(ctx context.Context, task *worker.Task) (any, error) { return nil, nil }))
	defer wrongSecret.Close()

	h := newHarness(t, 2, map[string]push.Target{
		"flaky":   {Type: push.TypeHTTP, URL: flakyFront.URL, MaxAttempts: 3},
		"refuses": {Type: push.TypeHTTP, URL: refusing.URL, MaxAttempts: 5},
		"hangs":   {Type: push.TypeHTTP, URL: hanging.URL, MaxAttempts: 2, Timeout: 100 * time.Millisecond},
		"dead":    {Type: push.TypeHTTP, URL: deadURL, MaxAttempts: 3},
		"secret":  {Type: push.TypeHTTP, URL: wrongSecret.URL, Secret: "wrong"},
	})
	flakyIDs := h.submit(t, "flaky", 6)
	refusedIDs := h.submit(t, "refuses", 3)
	hangIDs := h.submit(t, "hangs", 3)
	deadIDs := h.submit(t, "dead", 2)
	secretIDs := h.submit(t, "secret", 1)

	for _, task := range h.ended(t, flakyIDs) {
		require.Equal(t, core.StateSucceeded, task.State, "5xx is retried while the task keeps its slot")
		require.JSONEq(t, `"ran"`, string(task.Result))
		require.Equal(t, 2, task.PushAttempts, "two attempts failed")
	}
	for _, task := range h.ended(t, refusedIDs) {
		require.Equal(t, core.StateFailed, task.State)
		require.Equal(t, 1, task.PushAttempts, "a 4xx fails at once")
		require.Contains(t, task.Error, core.PushFailedCode+": ")
		require.Contains(t, task.Error, "422")
	}
	require.Equal(t, int64(3), bad.Load())
	for _, task := range h.ended(t, hangIDs) {
		require.Equal(t, core.StateFailed, task.State)
		require.Equal(t, 2, task.PushAttempts)
		require.True(t, strings.HasPrefix(task.Error, core.PushFailedCode+": "), task.Error)
		require.Contains(t, task.Error, "deadline exceeded")
	}
	for _, task := range h.ended(t, deadIDs) {
		require.Equal(t, core.StateFailed, task.State)
		require.Equal(t, 3, task.PushAttempts)
		require.Contains(t, task.Error, "connection refused")
	}
	for _, task := range h.ended(t, secretIDs) {
		require.Equal(t, core.StateFailed, task.State)
		require.Contains(t, task.Error, "401")
		require.Contains(t, task.Error, "signature does not match")
	}
}

// A target that holds every push holds its own pool's slots, and nothing
// else: another pool's deliveries go on.
func TestSlowTargetDoesNotSlowOthers(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	defer stuck.Close()
	defer close(hang)
	fast := httptest.NewServer(worker.HTTPHandler("", func(ctx context.Context, task *worker.Task) (any, error) { return nil, nil }))
	defer fast.Close()
	h := newHarness(t, 8, map[string]push.Target{
		"stuck": {Type: push.TypeHTTP, URL: stuck.URL, Timeout: 10 * time.Minute},
		"fast":  {Type: push.TypeHTTP, URL: fast.URL},
	})
	stuckIDs := h.submit(t, "stuck", 8)
	for _, task := range h.ended(t, h.submit(t, "fast", 200)) {
		require.Equal(t, core.StateSucceeded, task.State)
	}
	for _, id := range stuckIDs {
		task, err := h.sched.Backend().Task(h.ctx, id)
		require.NoError(t, err)
		require.True(t, task.Pushing(), "still waiting for its target")
	}
}

// Shutdown lets the deliveries under way record their outcomes while its
// context lasts; Close cancels them, leaving them to the sweep.
func TestShutdown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 8)
	srv := httptest.NewServer(worker.HTTPHandler("", func(ctx context.Context, task *worker.Task) (any, error) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	}))
	defer srv.Close()
	for _, graceful := range []bool{true, false} {
		h := newHarness(t, 2, map[string]push.Target{"p": {Type: push.TypeHTTP, URL: srv.URL}})
		ids := h.submit(t, "p", 2)
		<-arrived
		<-arrived
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			if graceful {
				h.pusher.Shutdown(context.Background())
			} else {
				h.pusher.Close()
			}
		}()
		var late []string
		if graceful {
			for !h.pusher.ShuttingDown() {
				time.Sleep(time.Millisecond)
			}
			late = h.submit(t, "p", 1) // parks; its start during the shutdown is not pushed
			release <- struct{}{}
			release <- struct{}{}
		}
		<-stopped
		for _, id := range late {
			task, err := h.sched.Backend().Task(h.ctx, id)
			require.NoError(t, err)
			require.True(t, task.Pushing(), "started by the hand-off, left to the sweep")
		}
		require.Empty(t, arrived, "nothing delivered once shutting down")
		for _, id := range ids {
			task, err := h.sched.Backend().Task(h.ctx, id)
			require.NoError(t, err)
			if graceful {
				require.Equal(t, core.StateSucceeded, task.State, "recorded before Shutdown returned")
			} else {
				require.True(t, task.Pushing(), "cancelled: pending, for the sweep")
			}
		}
	}
}

// WaitUntil gives up on a delivery that waits for its target when its
// context ends (a Lambda invocation's deadline), and returns true once none
// is under way.
func TestWaitUntil(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(worker.HTTPHandler("", func(ctx context.Context, task *worker.Task) (any, error) {
		<-release
		return nil, nil
	}))
	defer srv.Close()
	h := newHarness(t, 1, map[string]push.Target{"p": {Type: push.TypeHTTP, URL: srv.URL}})
	ids := h.submit(t, "p", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.False(t, h.pusher.WaitUntil(ctx), "the delivery still waits for its target")
	close(release)
	require.True(t, h.pusher.WaitUntil(context.Background()))
	require.Equal(t, core.StateSucceeded, h.ended(t, ids)[0].State)
}

// A task whose deliveries never record an outcome (each pushing process
// lost, or each answer later than the hold) fails once maxAttempts
// deliveries were made: it does not hold its slot forever.
func TestLostDeliveriesAreCounted(t *testing.T) {
	t.Parallel()
	var arrived atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived.Add(1)
		<-r.Context().Done() // never answers while the test runs
	}))
	defer srv.Close()
	clock := core.NewStubClock(time.Now())
	p, err := push.New(push.Options{Targets: map[string]push.Target{"p": {Type: push.TypeHTTP, URL: srv.URL, Timeout: 10 * time.Minute, MaxAttempts: 3}}})
	require.NoError(t, err)
	defer p.Close()
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{}), Pusher: p, Clock: clock})
	require.NoError(t, err)
	p.Bind(s)
	ctx := t.Context()
	require.NoError(t, s.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: time.Minute, Executor: core.ExecutorPush}))
	res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
	require.NoError(t, err)
	waitArrived := func(n int64) {
		for arrived.Load() < n {
			time.Sleep(time.Millisecond)
		}
	}
	waitArrived(1)
	for i := range 2 {
		clock.Advance(p.Hold("p") + time.Second)
		st, err := s.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.Pushed)
		waitArrived(int64(i + 2))
	}
	clock.Advance(p.Hold("p") + time.Second)
	st, err := s.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Pushed, "the fourth delivery is due")
	var task core.Task
	for {
		task, err = s.Backend().Task(ctx, res.Task.ID)
		require.NoError(t, err)
		if task.State.Terminal() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.Equal(t, core.StateFailed, task.State)
	require.Equal(t, core.PushFailedCode+": no outcome recorded after 3 deliveries", task.Error)
	require.Equal(t, int64(3), arrived.Load(), "three deliveries, no fourth")
}
