package coretest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// crashing wraps a backend; the next Commit that crash selects is applied
// and then reported as failed, as when a process dies after its write and
// before it learns the outcome.
type crashing struct {
	core.Backend
	mu    sync.Mutex
	crash func(*core.Txn) bool
	hits  int
}

func (c *crashing) arm(f func(*core.Txn) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crash = f
}

func (c *crashing) Commit(ctx context.Context, txn *core.Txn) error {
	if err := c.Backend.Commit(ctx, txn); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crash != nil && c.crash(txn) {
		c.crash = nil
		c.hits++
		return fmt.Errorf("commit: %w (after the write)", ErrInjected)
	}
	return nil
}

func writesState(txn *core.Txn, st core.State) bool {
	for _, w := range txn.Tasks {
		if w.Task.State == st {
			return true
		}
	}
	return false
}

func exerciseCrashes(t *testing.T, newBackend NewBackend) {
	setupCrash := func(t *testing.T) (*bundle, *crashing) {
		clock := core.NewStubClock(T0)
		c := &crashing{Backend: newBackend(t, clock)}
		// Warnings (a wake-up or a send that failed) go to the test's
		// output, shown when it fails.
		logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		s, err := core.New(core.Config{Backend: c, Clock: clock, OutboxGrace: 30 * time.Second, Logger: logger})
		require.NoError(t, err)
		tb := &bundle{ctx: t.Context(), clock: clock, b: c.Backend, s: s}
		require.NoError(t, s.PutPool(tb.ctx, poolCfg("p", 1, 5)))
		return tb, c
	}

	t.Run("CrashAfterPark", func(t *testing.T) {
		t.Parallel()
		tb, c := setupCrash(t)
		a := tb.submit(t, "acme", "p")
		c.arm(func(txn *core.Txn) bool { return txn.ParkedDelta == 1 })
		_, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
		require.ErrorIs(t, err, ErrInjected)
		// The task was parked but its queue message never sent.
		ids, err := tb.b.Unsent(tb.ctx, 10)
		require.NoError(t, err)
		require.Len(t, ids, 1)
		parked := tb.task(t, "acme", ids[0])
		require.Equal(t, core.StateParked, parked.State)

		tb.complete(t, a, core.StateSucceeded)
		require.Equal(t, core.StateParked, tb.task(t, "acme", parked.ID).State, "no message to wake it yet")
		tb.clock.Advance(30 * time.Second)
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.Resent)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", parked.ID).State, "the sweeper did not forget the parked task")
	})

	t.Run("CrashAfterStart", func(t *testing.T) {
		t.Parallel()
		tb, c := setupCrash(t)
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		c.arm(func(txn *core.Txn) bool { return txn.ParkedDelta == -1 && txn.RunningDelta == 1 })
		// A raised capacity's wake-up starts b, then hears of a failure.
		require.NoError(t, tb.s.PutPool(tb.ctx, poolCfg("p", 2, 5)))
		require.Equal(t, 1, c.hits)
		bt := tb.task(t, "acme", b.ID)
		require.Equal(t, core.StateRunning, bt.State)
		_, err := tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: b.ID, Lease: bt.Lease, Extend: 24 * time.Hour})
		require.NoError(t, err)
		// Another tenant's task, so that a FIFO queue that holds back
		// acme's group while b's message is out still delivers it.
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Extend: 24 * time.Hour})
		require.NoError(t, err)
		c2, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "globex", Pool: "p", MaxWait: 24 * time.Hour})
		require.NoError(t, err)
		require.Equal(t, core.StateParked, c2.Task.State)
		// b's queue message was never deleted. When it comes back it is
		// dropped, and the slot b frees goes to the next task.
		tb.clock.Advance(maxVisibility + time.Minute)
		tb.complete(t, bt, core.StateSucceeded)
		require.Equal(t, core.StateSucceeded, tb.task(t, "acme", b.ID).State)
		require.Equal(t, []core.MessageType{core.MessageStarted, "succeeded"}, messageTypes(tb.messagesOf(t, "acme", "acme", b.ID)))
		require.Equal(t, core.StateRunning, tb.task(t, "globex", c2.Task.ID).State)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Running: 2, MaxParked: 5}, tb.stats(t, "p"))
	})

	t.Run("CrashAfterComplete", func(t *testing.T) {
		t.Parallel()
		tb, c := setupCrash(t)
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		// The completion hands its slot to b in the same transaction,
		// which commits; then the process dies.
		c.arm(func(txn *core.Txn) bool { return writesState(txn, core.StateSucceeded) })
		_, err := tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
		require.ErrorIs(t, err, ErrInjected)
		// The holder retries: the completion took effect once, and so did
		// b's start.
		again := tb.complete(t, a, core.StateSucceeded)
		require.Equal(t, core.StateSucceeded, again.State)
		require.Len(t, tb.messagesOf(t, "acme", "acme", a.ID), 2)
		bt := tb.task(t, "acme", b.ID)
		require.Equal(t, core.StateRunning, bt.State)
		require.Equal(t, []core.MessageType{core.MessageStarted}, messageTypes(tb.messagesOf(t, "acme", "acme", b.ID)))
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, MaxParked: 5}, tb.stats(t, "p"))
		// b's queue message, never deleted, comes back and is dropped.
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: b.ID, Lease: bt.Lease, Extend: 24 * time.Hour})
		require.NoError(t, err)
		tb.clock.Advance(maxVisibility + time.Second)
		// A free slot makes dispatch receive it.
		require.NoError(t, tb.s.PutPool(tb.ctx, poolCfg("p", 2, 5)))
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Zero(t, st.Started)
		require.Equal(t, bt.Lease, tb.task(t, "acme", b.ID).Lease, "b was not started twice")
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Running: 1, MaxParked: 5}, tb.stats(t, "p"))
		// b's message, never deleted, does not start b again: the slot
		// goes to the live task.
		c2 := tb.submit(t, "globex", "p")
		require.Equal(t, core.StateRunning, c2.State)
		c3 := tb.submit(t, "globex", "p")
		require.Equal(t, core.StateParked, c3.State)
		tb.complete(t, c2, core.StateSucceeded)
		require.Equal(t, core.StateRunning, tb.task(t, "globex", c3.ID).State)
		require.Equal(t, bt.Lease, tb.task(t, "acme", b.ID).Lease, "b was not started twice")
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Running: 2, MaxParked: 5}, tb.stats(t, "p"))
		// Any message left is b's, which consumers drop when it comes up.
		ds, err := tb.b.Receive(tb.ctx, "p", 10)
		require.NoError(t, err)
		for _, d := range ds {
			require.Equal(t, b.ID, d.TaskID)
		}
	})

	t.Run("CrashAfterAdmit", func(t *testing.T) {
		t.Parallel()
		tb, c := setupCrash(t)
		c.arm(func(txn *core.Txn) bool { return txn.RunningDelta == 1 })
		req := core.SubmitRequest{Tenant: "acme", Pool: "p", Key: "k"}
		_, err := tb.s.Submit(tb.ctx, req)
		require.ErrorIs(t, err, ErrInjected)
		res, err := tb.s.Submit(tb.ctx, req)
		require.NoError(t, err)
		require.True(t, res.Replayed, "the retry finds the admitted task")
		require.Equal(t, core.StateRunning, res.Task.State)
		require.Equal(t, 1, tb.stats(t, "p").Running)
		require.Len(t, tb.messagesOf(t, "acme", "acme", res.Task.ID), 1)
	})
}
