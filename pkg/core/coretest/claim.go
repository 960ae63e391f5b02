package coretest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

func pullCfg(name string, capacity, maxParked int) core.PoolConfig {
	c := poolCfg(name, capacity, maxParked)
	c.Executor = core.ExecutorPull
	return c
}

func (tb *bundle) claim(t *testing.T, w core.Worker, pool string, max int) []core.Task {
	t.Helper()
	got, err := tb.s.Claim(tb.ctx, core.ClaimRequest{Worker: w, Pool: pool, Max: max})
	require.NoError(t, err)
	return got
}

// exerciseClaims covers pull pools: tasks park until a worker claims them,
// and a claim is the start.
func exerciseClaims(t *testing.T, newBackend NewBackend) {
	w1 := core.Worker{Name: "w1", Pools: []string{"p"}}

	t.Run("ClaimIsTheStart", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, pullCfg("p", 2, 10), poolCfg("q", 2, 10))
		var sub []core.Task
		for i, tenant := range []string{"acme", "globex", "acme"} {
			res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: tenant, Pool: "p", Key: fmt.Sprint("k", i), Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
			require.NoError(t, err)
			require.Equal(t, core.StateParked, res.Task.State, "a pull pool parks every submission")
			sub = append(sub, res.Task)
		}
		n, err := tb.s.Dispatch(tb.ctx, "p")
		require.NoError(t, err)
		require.Zero(t, n, "nothing but a claim starts a pull pool's task")
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Parked: 3, MaxParked: 10, Executor: core.ExecutorPull}, tb.stats(t, "p"))

		tb.clock.Advance(time.Second)
		got := tb.claim(t, w1, "p", 5)
		require.Len(t, got, 2, "a claim takes no more than the free slots")
		for _, task := range got {
			require.Equal(t, core.StateRunning, task.State)
			require.NotEmpty(t, task.Lease)
			require.True(t, task.StartedAt.Equal(T0.Add(time.Second)))
			require.True(t, task.LeaseExpiresAt.Equal(T0.Add(time.Second+time.Minute)))
			stored := tb.stored(t, task.ID)
			require.Equal(t, stored.Lease, task.Lease)
			require.JSONEq(t, string(stored.Payload), string(task.Payload), "the claim carries the payload")
			// The recipient learns of the start, without the lease.
			msgs := tb.messagesOf(t, task.Tenant, task.Tenant, task.ID)
			require.Equal(t, []core.MessageType{core.MessageStarted}, messageTypes(msgs))
			require.Empty(t, msgs[0].Lease)
			require.JSONEq(t, string(stored.Payload), string(msgs[0].Payload))
			// The audit trail names the worker.
			evs := allEvents(t, tb.ctx, tb.b, core.AuditQuery{Tenant: task.Tenant, From: T0.Add(-time.Hour), To: T0.Add(time.Hour), TaskID: task.ID})
			require.Len(t, evs, 2)
			require.Equal(t, core.EventStart, evs[1].Type)
			require.Equal(t, "claimed by w1", evs[1].Detail)
		}
		require.NotEqual(t, got[0].Tenant, got[1].Tenant, "claims are fair between tenants")
		require.Empty(t, tb.claim(t, w1, "p", 1), "no free slot")
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Running: 2, Parked: 1, MaxParked: 10, Executor: core.ExecutorPull}, tb.stats(t, "p"))

		// A completion without next frees the slot for the next claim, not
		// for the recipient.
		done, err := tb.s.Complete(tb.ctx, core.CompleteRequest{Worker: &w1, TaskID: got[0].ID, Lease: got[0].Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, done.State)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Running: 1, Parked: 1, MaxParked: 10, Executor: core.ExecutorPull}, tb.stats(t, "p"))

		// Complete-and-next: the freed slot goes to the next task in the
		// same call.
		done, next, err := tb.s.CompleteNext(tb.ctx, core.CompleteRequest{Worker: &w1, TaskID: got[1].ID, Lease: got[1].Lease, Status: core.StateFailed, Error: "boom", Next: 3})
		require.NoError(t, err)
		require.Equal(t, core.StateFailed, done.State)
		require.Len(t, next, 1)
		require.Equal(t, core.StateRunning, next[0].State)
		require.NotEmpty(t, next[0].Lease)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Running: 1, Parked: 0, MaxParked: 10, Executor: core.ExecutorPull}, tb.stats(t, "p"))

		// Nothing left: next is empty, not an error.
		_, next, err = tb.s.CompleteNext(tb.ctx, core.CompleteRequest{Worker: &w1, TaskID: next[0].ID, Lease: next[0].Lease, Status: core.StateSucceeded, Next: 1})
		require.NoError(t, err)
		require.Empty(t, next)
		for _, task := range sub {
			require.True(t, tb.task(t, task.Tenant, task.ID).State.Terminal())
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, pullCfg("p", 1, 10), poolCfg("q", 1, 10), pullCfg("other", 1, 10))
		_, err := tb.s.Claim(tb.ctx, core.ClaimRequest{Worker: core.Worker{Name: "wq", Pools: []string{"q"}}, Pool: "q"})
		require.ErrorIs(t, err, core.ErrInvalidState, "a permit pool's tasks are not claimed")
		_, err = tb.s.Claim(tb.ctx, core.ClaimRequest{Worker: w1, Pool: "other"})
		require.ErrorIs(t, err, core.ErrForbidden, "a worker claims only in its pools")
		_, err = tb.s.Claim(tb.ctx, core.ClaimRequest{Worker: core.Worker{Name: "w", Pools: []string{"nope"}}, Pool: "nope"})
		require.ErrorIs(t, err, core.ErrPoolNotFound)
		for _, bad := range []core.ClaimRequest{
			{Worker: w1, Pool: "p", Max: core.MaxClaim + 1},
			{Worker: w1, Pool: "p", Max: -1},
			{Worker: w1, Pool: "p", Wait: core.MaxClaimWait + time.Second},
			{Worker: core.Worker{Pools: []string{"p"}}, Pool: "p"},
		} {
			_, err = tb.s.Claim(tb.ctx, bad)
			require.ErrorIs(t, err, core.ErrInvalid, "%+v", bad)
		}

		o := tb.submit(t, "acme", "other")
		ow := core.Worker{Name: "wo", Pools: []string{"other"}}
		got := tb.claim(t, ow, "other", 1)
		require.Len(t, got, 1)
		require.Equal(t, o.ID, got[0].ID)
		// A worker of other pools does not see the task.
		_, err = tb.s.Complete(tb.ctx, core.CompleteRequest{Worker: &w1, TaskID: o.ID, Lease: got[0].Lease, Status: core.StateSucceeded})
		require.ErrorIs(t, err, core.ErrNotFound)
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Worker: &w1, TaskID: o.ID, Lease: got[0].Lease})
		require.ErrorIs(t, err, core.ErrNotFound)
		_, err = tb.s.CancelByWorker(tb.ctx, w1, o.ID)
		require.ErrorIs(t, err, core.ErrNotFound)
		// Its own worker heartbeats and cancels it, whatever its tenant.
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Worker: &ow, TaskID: o.ID, Lease: got[0].Lease})
		require.NoError(t, err)
		c, err := tb.s.CancelByWorker(tb.ctx, ow, o.ID)
		require.NoError(t, err)
		require.Equal(t, core.StateCancelled, c.State)
		// Next is a worker's, in a pull pool.
		q := tb.submit(t, "acme", "q")
		_, _, err = tb.s.CompleteNext(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: q.ID, Lease: q.Lease, Status: core.StateSucceeded, Next: 1})
		require.ErrorIs(t, err, core.ErrInvalid)
		wq := core.Worker{Name: "wq", Pools: []string{"q"}}
		_, _, err = tb.s.CompleteNext(tb.ctx, core.CompleteRequest{Worker: &wq, TaskID: q.ID, Lease: q.Lease, Status: core.StateSucceeded, Next: 1})
		require.ErrorIs(t, err, core.ErrInvalidState)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", q.ID).State, "a refused completion changes nothing")
		_, err = tb.s.Complete(tb.ctx, core.CompleteRequest{Worker: &wq, TaskID: q.ID, Lease: q.Lease, Status: core.StateSucceeded, Next: 1})
		require.ErrorIs(t, err, core.ErrInvalid)
	})

	t.Run("DeadlineAndLease", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, pullCfg("p", 1, 10))
		res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", MaxWait: time.Minute})
		require.NoError(t, err)
		late := res.Task
		tb.clock.Advance(time.Minute)
		require.Empty(t, tb.claim(t, w1, "p", 1), "never started at its deadline")
		require.Equal(t, core.StateExpired, tb.task(t, "acme", late.ID).State)

		a := tb.submit(t, "acme", "p")
		got := tb.claim(t, w1, "p", 1)
		require.Len(t, got, 1)
		require.Equal(t, a.ID, got[0].ID)
		// The worker disappears: its lease ends and the sweeper reclaims
		// the slot; the lease is then lost.
		tb.clock.Advance(2 * time.Minute)
		_, err = tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, core.StateTimedOut, tb.task(t, "acme", a.ID).State)
		_, err = tb.s.Complete(tb.ctx, core.CompleteRequest{Worker: &w1, TaskID: a.ID, Lease: got[0].Lease, Status: core.StateSucceeded})
		require.ErrorIs(t, err, core.ErrLeaseLost)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, MaxParked: 10, Executor: core.ExecutorPull}, tb.stats(t, "p"))
	})

	t.Run("WaitingClaim", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, pullCfg("p", 1, 10))
		claimed := make(chan []core.Task, 1)
		errc := make(chan error, 1)
		go func() {
			got, err := tb.s.Claim(tb.ctx, core.ClaimRequest{Worker: w1, Pool: "p", Wait: core.MaxClaimWait})
			errc <- err
			claimed <- got
		}()
		a := tb.submit(t, "acme", "p")
		require.NoError(t, <-errc)
		got := <-claimed
		require.Len(t, got, 1, "the waiting claim takes the submission")
		require.Equal(t, a.ID, got[0].ID)

		// A claim with nothing to take returns empty when its wait ends.
		empty, err := tb.s.Claim(tb.ctx, core.ClaimRequest{Worker: w1, Pool: "p", Wait: 10 * time.Millisecond})
		require.NoError(t, err)
		require.Empty(t, empty)
	})

	t.Run("WaitTask", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("q", 1, 10))
		a := tb.submit(t, "acme", "q")
		b := tb.submit(t, "acme", "q")
		require.Equal(t, core.StateParked, b.State)
		got, err := tb.s.WaitTask(tb.ctx, "acme", b.ID, 0)
		require.NoError(t, err)
		require.Equal(t, core.StateParked, got.State, "no wait: as it is")
		done := make(chan core.Task, 1)
		errc := make(chan error, 1)
		go func() {
			got, err := tb.s.WaitTask(tb.ctx, "acme", b.ID, core.MaxMailboxWait)
			errc <- err
			done <- got
		}()
		tb.complete(t, a, core.StateSucceeded)
		require.NoError(t, <-errc)
		got = <-done
		require.Equal(t, core.StateRunning, got.State)
		require.Equal(t, tb.task(t, "acme", b.ID).Lease, got.Lease)
		_, err = tb.s.WaitTask(tb.ctx, "globex", b.ID, time.Second)
		require.ErrorIs(t, err, core.ErrNotFound)
		_, err = tb.s.WaitTask(tb.ctx, "acme", b.ID, core.MaxMailboxWait+time.Second)
		require.ErrorIs(t, err, core.ErrInvalid)
	})

	t.Run("TenantSeesNoLease", func(t *testing.T) {
		t.Parallel()
		// The claiming worker holds the lease: the tenant's reads of its
		// task (a read, a wait, a replayed submission) go without it, the
		// worker's (the claim, the next task of a completion) carry it.
		tb := setup(t, newBackend, pullCfg("p", 1, 10))
		req := core.SubmitRequest{Tenant: "acme", Pool: "p", Key: "k"}
		res, err := tb.s.Submit(tb.ctx, req)
		require.NoError(t, err)
		a := res.Task
		require.Equal(t, core.StateParked, a.State)
		b := tb.submit(t, "acme", "p")
		got := tb.claim(t, w1, "p", 1)
		require.Len(t, got, 1)
		require.Equal(t, a.ID, got[0].ID)
		require.NotEmpty(t, got[0].Lease, "the claim carries the lease")

		view, err := tb.s.WaitTask(tb.ctx, "acme", a.ID, 0)
		require.NoError(t, err)
		require.Equal(t, core.StateRunning, view.State)
		require.Empty(t, view.Lease, "the tenant's read goes without the worker's lease")
		require.True(t, view.LeaseExpiresAt.Equal(got[0].LeaseExpiresAt), "the lease's end is shown")
		view, err = tb.s.WaitTask(tb.ctx, "acme", a.ID, time.Second)
		require.NoError(t, err)
		require.Empty(t, view.Lease, "nor does a wait")
		replay, err := tb.s.Submit(tb.ctx, req)
		require.NoError(t, err)
		require.True(t, replay.Replayed)
		require.Equal(t, core.StateRunning, replay.Task.State)
		require.Empty(t, replay.Task.Lease, "nor does a replayed submission")
		// Another process, with no pool read to go by, reads the pool.
		s2, err := core.New(core.Config{Backend: tb.b, Clock: tb.clock})
		require.NoError(t, err)
		view, err = s2.WaitTask(tb.ctx, "acme", a.ID, 0)
		require.NoError(t, err)
		require.Empty(t, view.Lease)

		// The worker's next task, started in its completion, carries its lease;
		// the tenant's read of it does not.
		_, next, err := tb.s.CompleteNext(tb.ctx, core.CompleteRequest{Worker: &w1, TaskID: a.ID, Lease: got[0].Lease, Status: core.StateSucceeded, Next: 1})
		require.NoError(t, err)
		require.Len(t, next, 1)
		require.Equal(t, b.ID, next[0].ID)
		require.NotEmpty(t, next[0].Lease)
		view, err = tb.s.WaitTask(tb.ctx, "acme", b.ID, 0)
		require.NoError(t, err)
		require.Equal(t, core.StateRunning, view.State)
		require.Empty(t, view.Lease)
		// The worker's lease is what the store keeps.
		stored, err := tb.b.Task(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, next[0].Lease, stored.Lease)
	})

	t.Run("RacingClaimers", func(t *testing.T) {
		t.Parallel()
		// Claimers race each other and the sweeper; an observer of their own
		// holds (from a claim's answer to the completion call) sees no task
		// held twice, never more than capacity held, and one outcome each.
		const (
			capacity = 3
			claimers = 5
			tasks    = 30
		)
		tb := setup(t, newBackend, core.PoolConfig{Name: "p", Capacity: capacity, MaxParked: tasks, DefaultMaxWait: 24 * time.Hour, RunTimeout: time.Hour, Executor: core.ExecutorPull})
		ids := make(map[string]bool, tasks)
		for i := range tasks {
			ids[tb.submit(t, []string{"acme", "globex", "initech"}[i%3], "p").ID] = true
		}
		var (
			mu       sync.Mutex
			held     int                // tasks held at once
			seen     = map[string]int{} // claims that returned each task
			peak     int
			finished atomic.Int64
			wg       sync.WaitGroup
		)
		hold := func(got []core.Task) {
			mu.Lock()
			defer mu.Unlock()
			for _, task := range got {
				seen[task.ID]++
				held++
			}
			peak = max(peak, held)
		}
		errs := make(chan error, claimers+1)
		// A hang guard: the stub clock never moves, so a message a store
		// left hidden would never come back; fail with what is stuck.
		guard, stopGuard := context.WithTimeout(tb.ctx, 5*time.Minute)
		defer stopGuard()
		for c := range claimers {
			w := core.Worker{Name: fmt.Sprint("w", c), Pools: []string{"p"}}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []core.Task
				for finished.Load() < tasks {
					if guard.Err() != nil {
						errs <- fmt.Errorf("claimer %s: %d of %d tasks finished when the hang guard ended the run", w.Name, finished.Load(), tasks)
						return
					}
					if len(mine) == 0 {
						got, err := tb.s.Claim(tb.ctx, core.ClaimRequest{Worker: w, Pool: "p", Max: 1 + c%3, Wait: 5 * time.Millisecond})
						if err != nil {
							errs <- err
							return
						}
						hold(got)
						mine = got
					}
					if len(mine) == 0 {
						continue
					}
					task := mine[0]
					mine = mine[1:]
					mu.Lock()
					held--
					mu.Unlock()
					_, next, err := tb.s.CompleteNext(tb.ctx, core.CompleteRequest{Worker: &w, TaskID: task.ID, Lease: task.Lease, Status: core.StateSucceeded, Next: 1})
					if err != nil {
						errs <- fmt.Errorf("complete %s: %w", task.ID, err)
						return
					}
					finished.Add(1)
					hold(next)
					mine = append(mine, next...)
				}
			}()
		}
		stop := make(chan struct{})
		sweeper := make(chan struct{})
		go func() {
			defer close(sweeper)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := tb.s.Sweep(tb.ctx); err != nil {
					errs <- err
					return
				}
				if _, err := tb.s.Dispatch(tb.ctx, "p"); err != nil {
					errs <- err
					return
				}
			}
		}()
		wg.Wait()
		close(stop)
		<-sweeper
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.LessOrEqual(t, peak, capacity, "held at once")
		require.Len(t, seen, tasks)
		for id, n := range seen {
			require.True(t, ids[id], "a task that was not submitted: %s", id)
			require.Equal(t, 1, n, "task %s claimed %d times", id, n)
		}
		for id := range ids {
			task, err := tb.b.Task(tb.ctx, id)
			require.NoError(t, err)
			require.Equal(t, core.StateSucceeded, task.State, id)
			require.Equal(t, []core.MessageType{core.MessageStarted, "succeeded"}, messageTypes(tb.messagesOf(t, task.Tenant, task.Tenant, id)))
		}
		require.Equal(t, core.PoolStats{Name: "p", Capacity: capacity, MaxParked: tasks, Executor: core.ExecutorPull}, tb.stats(t, "p"))
	})
}
