package coretest

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// bundle is what a lifecycle test works with.
type bundle struct {
	ctx   context.Context
	clock *core.StubClock
	b     core.Backend
	s     *core.Scheduler
}

func setup(t *testing.T, newBackend NewBackend, pools ...core.PoolConfig) *bundle {
	t.Helper()
	clock := core.NewStubClock(T0)
	b := newBackend(t, clock)
	// The scheduler's warnings (repairs left to the sweeper: a failed
	// send, release or wake-up) go to the test's output, shown when it fails.
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := core.New(core.Config{Backend: b, Clock: clock, Logger: logger})
	require.NoError(t, err)
	tb := &bundle{ctx: t.Context(), clock: clock, b: b, s: s}
	for _, p := range pools {
		require.NoError(t, s.PutPool(tb.ctx, p))
	}
	return tb
}

func poolCfg(name string, capacity, maxParked int) core.PoolConfig {
	return core.PoolConfig{Name: name, Capacity: capacity, MaxParked: maxParked, DefaultMaxWait: 10 * time.Minute, RunTimeout: time.Minute}
}

func (tb *bundle) submit(t *testing.T, tenant, pool string) core.Task {
	t.Helper()
	res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: tenant, Pool: pool})
	require.NoError(t, err)
	require.False(t, res.Replayed)
	return res.Task
}

func (tb *bundle) task(t *testing.T, tenant, id string) core.Task {
	t.Helper()
	task, err := tb.s.Task(tb.ctx, tenant, id)
	require.NoError(t, err)
	return task
}

// stored returns task id as the store holds it, lease included whoever
// holds it (tb.task is the tenant's view).
func (tb *bundle) stored(t *testing.T, id string) core.Task {
	t.Helper()
	task, err := tb.b.Task(tb.ctx, id)
	require.NoError(t, err)
	return task
}

func (tb *bundle) complete(t *testing.T, task core.Task, status core.State) core.Task {
	t.Helper()
	done, err := tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: task.Tenant, TaskID: task.ID, Lease: task.Lease, Status: status})
	require.NoError(t, err)
	require.Equal(t, status, done.State)
	return done
}

func (tb *bundle) stats(t *testing.T, pool string) core.PoolStats {
	t.Helper()
	st, err := tb.s.Pool(tb.ctx, pool)
	require.NoError(t, err)
	return st
}

// messagesOf returns the messages about task id in its recipient's mailbox.
func (tb *bundle) messagesOf(t *testing.T, tenant, recipient, id string) []core.Message {
	t.Helper()
	var out []core.Message
	for _, m := range allMessages(t, tb.ctx, tb.b, tenant, recipient) {
		if m.TaskID == id {
			out = append(out, m)
		}
	}
	return out
}

func messageTypes(ms []core.Message) []core.MessageType {
	out := make([]core.MessageType, len(ms))
	for i, m := range ms {
		out[i] = m.Type
	}
	return out
}

type transition struct {
	Type     string
	From, To core.State
}

func (tb *bundle) transitions(t *testing.T, tenant, id string) []transition {
	t.Helper()
	var out []transition
	for _, e := range allEvents(t, tb.ctx, tb.b, core.AuditQuery{Tenant: tenant, From: T0.Add(-time.Hour), To: tb.clock.Now().Add(time.Hour), TaskID: id}) {
		out = append(out, transition{e.Type, e.From, e.To})
	}
	return out
}

func exerciseLifecycle(t *testing.T, newBackend NewBackend) {
	t.Run("AdmitParkReject", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 1))
		a := tb.submit(t, "acme", "p")
		require.Equal(t, core.StateRunning, a.State)
		require.NotEmpty(t, a.Lease)
		require.True(t, a.StartedAt.Equal(T0))
		require.True(t, a.LeaseExpiresAt.Equal(T0.Add(time.Minute)))
		b := tb.submit(t, "acme", "p")
		require.Equal(t, core.StateParked, b.State)
		require.Empty(t, b.Lease)
		require.True(t, b.Deadline.Equal(T0.Add(10*time.Minute)))

		res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
		require.ErrorIs(t, err, core.ErrPoolFull)
		c := res.Task
		require.Equal(t, core.StateRejected, c.State)
		require.NotEmpty(t, c.ID)
		stored := tb.task(t, "acme", c.ID)
		require.Equal(t, core.StateRejected, stored.State, "the rejected task is recorded")
		require.Equal(t, []core.MessageType{"rejected"}, messageTypes(tb.messagesOf(t, "acme", "acme", c.ID)))
		require.Equal(t, []transition{{core.EventSubmit, "", core.StateRejected}}, tb.transitions(t, "acme", c.ID))

		require.Equal(t, []core.MessageType{core.MessageStarted}, messageTypes(tb.messagesOf(t, "acme", "acme", a.ID)))
		require.Equal(t, a.Lease, tb.messagesOf(t, "acme", "acme", a.ID)[0].Lease)
		require.Empty(t, tb.messagesOf(t, "acme", "acme", b.ID))
		st := tb.stats(t, "p")
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, Parked: 1, MaxParked: 1}, st)

		_, err = tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "nope"})
		require.ErrorIs(t, err, core.ErrPoolNotFound)
	})

	t.Run("RecipientAndPayload", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 1))
		res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Recipient: "worker", Payload: json.RawMessage(`{"n":1}`), RunTimeout: 5 * time.Minute})
		require.NoError(t, err)
		a := res.Task
		require.Equal(t, "worker", a.Recipient)
		require.True(t, a.LeaseExpiresAt.Equal(T0.Add(5*time.Minute)))
		require.Len(t, tb.messagesOf(t, "acme", "worker", a.ID), 1)
		require.Empty(t, tb.messagesOf(t, "acme", "acme", a.ID))
		done, err := tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateFailed, Result: json.RawMessage(`{"r":2}`), Error: "boom"})
		require.NoError(t, err)
		require.Equal(t, "boom", done.Error)
		got := tb.task(t, "acme", a.ID)
		require.JSONEq(t, `{"n":1}`, string(got.Payload))
		require.JSONEq(t, `{"r":2}`, string(got.Result))
		msgs := tb.messagesOf(t, "acme", "worker", a.ID)
		require.Equal(t, []core.MessageType{core.MessageStarted, "failed"}, messageTypes(msgs))
		require.Equal(t, "boom", msgs[1].Error)
		require.JSONEq(t, `{"r":2}`, string(msgs[1].Result))
	})

	t.Run("Idempotency", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 1))
		req := core.SubmitRequest{Tenant: "acme", Pool: "p", Key: "k1", Payload: json.RawMessage(`{"a":1}`)}
		first, err := tb.s.Submit(tb.ctx, req)
		require.NoError(t, err)
		require.False(t, first.Replayed)
		again, err := tb.s.Submit(tb.ctx, req)
		require.NoError(t, err)
		require.True(t, again.Replayed)
		require.Equal(t, first.Task.ID, again.Task.ID)
		require.Equal(t, 1, tb.stats(t, "p").Running, "a replay takes no slot")

		other := req
		other.Payload = json.RawMessage(`{"a":2}`)
		_, err = tb.s.Submit(tb.ctx, other)
		require.ErrorIs(t, err, core.ErrKeyConflict)
		other = req
		other.MaxWait = time.Minute
		_, err = tb.s.Submit(tb.ctx, other)
		require.ErrorIs(t, err, core.ErrKeyConflict)

		// Keys are per tenant.
		g := req
		g.Tenant = "globex"
		res, err := tb.s.Submit(tb.ctx, g)
		require.NoError(t, err)
		require.False(t, res.Replayed)
		require.NotEqual(t, first.Task.ID, res.Task.ID)
		require.Equal(t, core.StateParked, res.Task.State)

		// A replay shows the task's current state.
		tb.complete(t, first.Task, core.StateSucceeded)
		again, err = tb.s.Submit(tb.ctx, req)
		require.NoError(t, err)
		require.True(t, again.Replayed)
		require.Equal(t, core.StateSucceeded, again.Task.State)

		// A rejected submission keeps its key.
		fill := tb.submit(t, "initech", "p")
		require.Equal(t, core.StateParked, fill.State)
		rej := core.SubmitRequest{Tenant: "acme", Pool: "p", Key: "k2"}
		res, err = tb.s.Submit(tb.ctx, rej)
		require.ErrorIs(t, err, core.ErrPoolFull)
		res2, err := tb.s.Submit(tb.ctx, rej)
		require.NoError(t, err)
		require.True(t, res2.Replayed)
		require.Equal(t, res.Task.ID, res2.Task.ID)
		require.Equal(t, core.StateRejected, res2.Task.State)
	})

	t.Run("StartedCarriesTask", func(t *testing.T) {
		t.Parallel()
		// Every start (admission, hand-off, dispatch) delivers what a worker
		// needs to run the task, so that it needs no read of its own.
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		submit := func(key, payload string) core.Task {
			res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Key: key, Payload: json.RawMessage(payload)})
			require.NoError(t, err)
			return res.Task
		}
		check := func(id string) {
			t.Helper()
			task := tb.task(t, "acme", id)
			require.Equal(t, core.StateRunning, task.State)
			msgs := tb.messagesOf(t, "acme", "acme", id)
			require.Len(t, msgs, 1)
			m := msgs[0]
			require.Equal(t, core.MessageStarted, m.Type)
			require.Equal(t, "acme", m.Tenant)
			require.Equal(t, task.Key, m.Key)
			require.JSONEq(t, string(task.Payload), string(m.Payload))
			require.True(t, task.Deadline.Equal(m.Deadline), "deadline %s, message %s", task.Deadline, m.Deadline)
			require.Equal(t, task.Lease, m.Lease)
			require.True(t, task.LeaseExpiresAt.Equal(m.LeaseExpiresAt), "lease end %s, message %s", task.LeaseExpiresAt, m.LeaseExpiresAt)
		}
		a := submit("ka", `{"n":1,"s":"é"}`)
		b := submit("kb", `[1,2,3]`)
		c := submit("", `"text"`)
		check(a.ID)
		tb.clock.Advance(time.Second)
		tb.complete(t, tb.task(t, "acme", a.ID), core.StateSucceeded) // b starts in the hand-off
		check(b.ID)
		_, err := tb.s.Cancel(tb.ctx, "acme", b.ID)
		require.NoError(t, err)
		if tb.task(t, "acme", c.ID).State == core.StateParked {
			_, err = tb.s.Dispatch(tb.ctx, "p")
			require.NoError(t, err)
		}
		check(c.ID)
	})

	t.Run("WakeOnComplete", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		require.Equal(t, core.StateParked, b.State)
		tb.clock.Advance(time.Second)
		tb.complete(t, a, core.StateSucceeded)
		got := tb.task(t, "acme", b.ID)
		require.Equal(t, core.StateRunning, got.State)
		require.True(t, got.StartedAt.Equal(T0.Add(time.Second)))
		msgs := tb.messagesOf(t, "acme", "acme", b.ID)
		require.Equal(t, []core.MessageType{core.MessageStarted}, messageTypes(msgs))
		require.Equal(t, got.Lease, msgs[0].Lease)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, Parked: 0, MaxParked: 5}, tb.stats(t, "p"))
		// One mailbox reads the transitions in commit order: a's start, a's
		// outcome, then b's start, which the same transaction made.
		var order []string
		for _, m := range allMessages(t, tb.ctx, tb.b, "acme", "acme") {
			order = append(order, m.TaskID+":"+string(m.Type))
		}
		require.Equal(t, []string{a.ID + ":started", a.ID + ":succeeded", b.ID + ":started"}, order)
	})

	t.Run("WakeOnCancelOfRunning", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		got, err := tb.s.Cancel(tb.ctx, "acme", a.ID)
		require.NoError(t, err)
		require.Equal(t, core.StateCancelled, got.State)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", b.ID).State)
		require.Equal(t, 1, tb.stats(t, "p").Running)
		require.Equal(t, []core.MessageType{core.MessageStarted, "cancelled"}, messageTypes(tb.messagesOf(t, "acme", "acme", a.ID)))
		// The cancelled holder's lease is dead.
		_, err = tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
		require.ErrorIs(t, err, core.ErrLeaseLost)
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease})
		require.ErrorIs(t, err, core.ErrLeaseLost)
	})

	t.Run("RepeatedCompletion", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 2, 5))
		a := tb.submit(t, "acme", "p")
		first := tb.complete(t, a, core.StateSucceeded)
		second := tb.complete(t, a, core.StateSucceeded)
		require.Equal(t, first.ID, second.ID)
		require.True(t, first.EndedAt.Equal(second.EndedAt))
		_, err := tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateFailed})
		require.ErrorIs(t, err, core.ErrLeaseLost, "another completion of an ended task")
		require.Equal(t, []core.MessageType{core.MessageStarted, "succeeded"}, messageTypes(tb.messagesOf(t, "acme", "acme", a.ID)))
		require.Equal(t, 0, tb.stats(t, "p").Running, "the slot is freed once")
	})

	t.Run("LeaseLost", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		_, err := tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: "not-the-lease", Status: core.StateSucceeded})
		require.ErrorIs(t, err, core.ErrLeaseLost)
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: "not-the-lease"})
		require.ErrorIs(t, err, core.ErrLeaseLost)
		_, err = tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: b.ID, Lease: a.Lease, Status: core.StateSucceeded})
		require.ErrorIs(t, err, core.ErrLeaseLost, "a parked task has no lease")
		require.Equal(t, core.StateRunning, tb.task(t, "acme", a.ID).State)

		// The lease ends; the holder's completion is refused and the slot
		// goes to the parked task.
		tb.clock.Advance(time.Minute)
		_, err = tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
		require.ErrorIs(t, err, core.ErrLeaseLost)
		require.Equal(t, core.StateTimedOut, tb.task(t, "acme", a.ID).State)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", b.ID).State)
		require.Equal(t, []core.MessageType{core.MessageStarted, "timed_out"}, messageTypes(tb.messagesOf(t, "acme", "acme", a.ID)))
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease})
		require.ErrorIs(t, err, core.ErrLeaseLost)

		// A heartbeat at the very end of b's lease is too late as well.
		bt := tb.task(t, "acme", b.ID)
		tb.clock.Set(bt.LeaseExpiresAt)
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: b.ID, Lease: bt.Lease})
		require.ErrorIs(t, err, core.ErrLeaseLost)
		require.Equal(t, core.StateTimedOut, tb.task(t, "acme", b.ID).State)
		require.Equal(t, 0, tb.stats(t, "p").Running)
	})

	t.Run("HeartbeatExtends", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		tb.clock.Advance(50 * time.Second)
		end, err := tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease})
		require.NoError(t, err)
		require.True(t, end.Equal(T0.Add(50*time.Second+time.Minute)), "default extension is the run timeout")
		tb.clock.Advance(50 * time.Second)
		end, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Extend: 5 * time.Minute})
		require.NoError(t, err)
		require.True(t, end.Equal(T0.Add(100*time.Second+5*time.Minute)))
		require.True(t, tb.task(t, "acme", a.ID).LeaseExpiresAt.Equal(end))
		// Past the original lease end, the sweeper leaves it alone.
		tb.clock.Advance(4 * time.Minute)
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Zero(t, st.TimedOut)
		tb.complete(t, a, core.StateSucceeded)
		require.Equal(t, []transition{{core.EventSubmit, "", core.StateRunning}, {core.EventComplete, core.StateRunning, core.StateSucceeded}}, tb.transitions(t, "acme", a.ID))
	})

	t.Run("Cancel", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		c := tb.submit(t, "acme", "p")
		got, err := tb.s.Cancel(tb.ctx, "acme", b.ID)
		require.NoError(t, err)
		require.Equal(t, core.StateCancelled, got.State)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, Parked: 1, MaxParked: 5}, tb.stats(t, "p"))
		require.Equal(t, []core.MessageType{"cancelled"}, messageTypes(tb.messagesOf(t, "acme", "acme", b.ID)))
		// Cancelling again returns the task again.
		again, err := tb.s.Cancel(tb.ctx, "acme", b.ID)
		require.NoError(t, err)
		require.Equal(t, core.StateCancelled, again.State)
		require.Len(t, tb.messagesOf(t, "acme", "acme", b.ID), 1)

		// The freed slot skips the cancelled task and goes to c.
		tb.complete(t, a, core.StateSucceeded)
		require.Equal(t, core.StateCancelled, tb.task(t, "acme", b.ID).State)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", c.ID).State)
		_, err = tb.s.Cancel(tb.ctx, "acme", a.ID)
		require.ErrorIs(t, err, core.ErrInvalidState, "cancel of a succeeded task")
		require.Equal(t, core.StateSucceeded, tb.task(t, "acme", a.ID).State)
		got, err = tb.s.Cancel(tb.ctx, "acme", c.ID)
		require.NoError(t, err)
		require.Equal(t, core.StateCancelled, got.State)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 0, Parked: 0, MaxParked: 5}, tb.stats(t, "p"))
		require.Equal(t, []transition{
			{core.EventSubmit, "", core.StateParked},
			{core.EventStart, core.StateParked, core.StateRunning},
			{core.EventCancel, core.StateRunning, core.StateCancelled},
		}, tb.transitions(t, "acme", c.ID))
		_, err = tb.s.Cancel(tb.ctx, "acme", "no-such-task")
		require.ErrorIs(t, err, core.ErrNotFound)
	})

	t.Run("SweepReclaimsLease", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		tb.clock.Advance(59 * time.Second)
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Zero(t, st.TimedOut)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", a.ID).State)
		tb.clock.Advance(time.Second)
		st, err = tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.TimedOut)
		require.Equal(t, core.StateTimedOut, tb.task(t, "acme", a.ID).State)
		bt := tb.task(t, "acme", b.ID)
		require.Equal(t, core.StateRunning, bt.State)
		require.True(t, bt.StartedAt.Equal(T0.Add(time.Minute)))
		require.Equal(t, 1, tb.stats(t, "p").Running)
		require.Equal(t, []transition{{core.EventSubmit, "", core.StateRunning}, {core.EventTimeout, core.StateRunning, core.StateTimedOut}}, tb.transitions(t, "acme", a.ID))
	})

	t.Run("SweepExpiresDeadline", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", MaxWait: 30 * time.Second})
		require.NoError(t, err)
		b := res.Task
		res, err = tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Deadline: T0.Add(45 * time.Second)})
		require.NoError(t, err)
		c := res.Task
		require.True(t, c.Deadline.Equal(T0.Add(45*time.Second)))
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Extend: time.Hour})
		require.NoError(t, err)

		tb.clock.Advance(30 * time.Second)
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.Expired)
		require.Equal(t, core.StateExpired, tb.task(t, "acme", b.ID).State)
		require.Equal(t, core.StateParked, tb.task(t, "acme", c.ID).State)
		require.Equal(t, []core.MessageType{"expired"}, messageTypes(tb.messagesOf(t, "acme", "acme", b.ID)))
		require.Equal(t, []transition{{core.EventSubmit, "", core.StateParked}, {core.EventExpire, core.StateParked, core.StateExpired}}, tb.transitions(t, "acme", b.ID))
		require.Equal(t, 1, tb.stats(t, "p").Parked)
		tb.clock.Advance(15 * time.Second)
		st, err = tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.Expired)
		require.Equal(t, core.StateExpired, tb.task(t, "acme", c.ID).State)
		require.Equal(t, 0, tb.stats(t, "p").Parked)
		// The expired tasks' queue messages are dropped, not started.
		tb.complete(t, a, core.StateSucceeded)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, MaxParked: 5}, tb.stats(t, "p"))
	})

	t.Run("LateSweeperNeverStartsExpired", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		_, err := tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Extend: time.Hour})
		require.NoError(t, err)
		res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", MaxWait: time.Minute})
		require.NoError(t, err)
		b := res.Task
		c := tb.submit(t, "acme", "p") // deadline 10m
		// The deadline of b passes with no sweep; then the slot frees.
		tb.clock.Advance(time.Minute)
		tb.complete(t, a, core.StateSucceeded)
		bt := tb.task(t, "acme", b.ID)
		require.Equal(t, core.StateExpired, bt.State)
		require.True(t, bt.StartedAt.IsZero())
		require.Equal(t, []core.MessageType{"expired"}, messageTypes(tb.messagesOf(t, "acme", "acme", b.ID)))
		require.Equal(t, core.StateRunning, tb.task(t, "acme", c.ID).State, "the slot went to the next live task")

		// An explicit Dispatch behaves the same, for a scheduler whose
		// releases do not dispatch at once.
		quiet, err := core.New(core.Config{Backend: tb.b, Clock: tb.clock, Wake: func(context.Context, string, time.Time) {}})
		require.NoError(t, err)
		res, err = quiet.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", MaxWait: time.Minute})
		require.NoError(t, err)
		d := res.Task
		require.Equal(t, core.StateParked, d.State)
		ct := tb.task(t, "acme", c.ID)
		_, err = quiet.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: c.ID, Lease: ct.Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
		require.Equal(t, core.StateParked, tb.task(t, "acme", d.ID).State)
		tb.clock.Advance(time.Minute)
		n, err := quiet.Dispatch(tb.ctx, "p")
		require.NoError(t, err)
		require.Zero(t, n)
		dt := tb.task(t, "acme", d.ID)
		require.Equal(t, core.StateExpired, dt.State)
		require.True(t, dt.StartedAt.IsZero())
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, MaxParked: 5}, tb.stats(t, "p"))
	})
}
