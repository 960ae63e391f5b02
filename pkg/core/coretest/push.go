package coretest

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// pushHold is the hold of the recording pusher's pools.
const pushHold = 30 * time.Second

// recordingPusher is a core.Pusher that delivers nothing: it records what
// core hands it, as a target would see it, for the test to act as the
// target's answers would.
type recordingPusher struct {
	mu     sync.Mutex
	pushed []core.Task
}

func (p *recordingPusher) Push(t core.Task) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushed = append(p.pushed, t)
}

func (p *recordingPusher) Hold(string) time.Duration { return pushHold }

// take returns and forgets what was pushed so far.
func (p *recordingPusher) take() []core.Task {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.pushed
	p.pushed = nil
	return out
}

func pushCfg(name string, capacity, maxParked int) core.PoolConfig {
	c := poolCfg(name, capacity, maxParked)
	c.Executor = core.ExecutorPush
	return c
}

// pushedIDs returns the ids of ts.
func pushedIDs(ts []core.Task) []string {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids
}

// exercisePush covers push pools: every start is handed to the Pusher
// after its commit, the pending delivery is stored with the start, and the
// Pusher's answers (accepted, retry, failed, the outcome) are transitions.
func exercisePush(t *testing.T, newBackend NewBackend) {
	setupPush := func(t *testing.T, pools ...core.PoolConfig) (*bundle, *recordingPusher) {
		t.Helper()
		tb := setup(t, newBackend)
		pusher := &recordingPusher{}
		logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		s, err := core.New(core.Config{Backend: tb.b, Clock: tb.clock, Logger: logger, Pusher: pusher})
		require.NoError(t, err)
		tb.s = s
		for _, p := range pools {
			require.NoError(t, s.PutPool(tb.ctx, p))
		}
		return tb, pusher
	}

	t.Run("EveryStartIsPushedOnce", func(t *testing.T) {
		t.Parallel()
		tb, pusher := setupPush(t, pushCfg("p", 1, 10))
		a := tb.submit(t, "acme", "p")
		require.Equal(t, core.StateRunning, a.State)
		require.True(t, a.Pushing(), "an admitted task of a push pool waits for its target")
		require.True(t, a.PushAt.Equal(T0.Add(pushHold)))
		require.True(t, a.LeaseExpiresAt.Equal(T0.Add(pushHold+time.Minute)), "the lease outlasts the delivery")
		require.Empty(t, a.Lease, "the tenant's answer goes without the lease: the target holds it")
		pushed := pusher.take()
		require.Equal(t, []string{a.ID}, pushedIDs(pushed), "pushed after the commit")
		require.NotEmpty(t, pushed[0].Lease, "the target gets the lease")
		a = pushed[0]
		stored, err := tb.b.Task(tb.ctx, a.ID)
		require.NoError(t, err)
		require.True(t, stored.PushAt.Equal(a.PushAt), "the pending delivery is stored with the start")
		msgs := tb.messagesOf(t, "acme", "acme", a.ID)
		require.Equal(t, []core.MessageType{core.MessageStarted}, messageTypes(msgs))
		require.Empty(t, msgs[0].Lease, "the target holds the lease, not the recipient")

		b := tb.submit(t, "acme", "p")
		require.Equal(t, core.StateParked, b.State)
		require.Empty(t, pusher.take(), "a parked task is not pushed")

		// The target took a (asynchronous), then completes it: the hand-off
		// starts b, which is pushed.
		require.NoError(t, tb.s.PushAccepted(tb.ctx, a.ID, a.Lease))
		a = tb.stored(t, a.ID)
		require.False(t, a.Pushing())
		tb.clock.Advance(time.Second)
		tb.complete(t, a, core.StateSucceeded)
		b = tb.stored(t, b.ID)
		require.True(t, b.Pushing())
		pushed = pusher.take()
		require.Equal(t, []string{b.ID}, pushedIDs(pushed))
		require.Equal(t, b.Lease, pushed[0].Lease)

		// Within the hold, nothing is pushed again.
		tb.clock.Advance(pushHold - time.Second)
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Zero(t, st.Pushed)
		require.Empty(t, pusher.take())

		// Past it, the delivery's outcome was never recorded (the pushing
		// process is gone): another process's sweep pushes it again, once.
		tb.clock.Advance(2 * time.Second)
		other := &recordingPusher{}
		s2, err := core.New(core.Config{Backend: tb.b, Clock: tb.clock, Pusher: other})
		require.NoError(t, err)
		st, err = s2.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.Pushed)
		st, err = tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Zero(t, st.Pushed, "the first sweep moved the delivery a hold ahead")
		again := other.take()
		require.Equal(t, []string{b.ID}, pushedIDs(again))
		require.Equal(t, b.Lease, again[0].Lease, "the same start, pushed again")
		require.Equal(t, 1, again[0].PushAttempts, "the delivery without an outcome is counted")
		require.Empty(t, pusher.take())
		require.Equal(t, core.StateRunning, tb.task(t, "acme", b.ID).State, "a repeated push is not a new start")
	})

	t.Run("AnOutcomeEndsTheDelivery", func(t *testing.T) {
		t.Parallel()
		tb, pusher := setupPush(t, pushCfg("p", 1, 10))
		a := tb.submit(t, "acme", "p")
		a = pusher.take()[0] // as the target has it, with the lease
		// A synchronous target answered with the outcome.
		done := tb.complete(t, a, core.StateSucceeded)
		require.False(t, done.Pushing())
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, MaxParked: 10, Executor: core.ExecutorPush}, tb.stats(t, "p"))
		// A late answer of a repeated delivery changes nothing.
		require.NoError(t, tb.s.PushAccepted(tb.ctx, a.ID, a.Lease))
		_, ok, err := tb.s.PushRetry(tb.ctx, a, "late", time.Second)
		require.NoError(t, err)
		require.False(t, ok)
		failed, err := tb.s.PushFailed(tb.ctx, a, "late")
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, failed.State)
		require.Equal(t, core.StateSucceeded, tb.task(t, "acme", a.ID).State)
	})

	t.Run("RetriesThenFails", func(t *testing.T) {
		t.Parallel()
		tb, pusher := setupPush(t, pushCfg("p", 1, 10))
		tb.submit(t, "acme", "p")
		b := tb.submit(t, "globex", "p")
		a := pusher.take()[0] // as the target has it, with the lease

		tb.clock.Advance(time.Second)
		r, ok, err := tb.s.PushRetry(tb.ctx, a, "503 Service Unavailable", 2*time.Second)
		require.NoError(t, err)
		require.True(t, ok)
		require.Zero(t, r.PushAttempts, "counted when the next delivery is made")
		require.Equal(t, "503 Service Unavailable", r.Error)
		require.True(t, r.PushAt.Equal(T0.Add(3*time.Second)))
		require.False(t, r.LeaseExpiresAt.Before(r.PushAt.Add(pushHold+time.Minute)), "the lease runs on past the retry")
		stored, err := tb.b.Task(tb.ctx, a.ID)
		require.NoError(t, err)
		require.True(t, stored.PushAt.Equal(r.PushAt))
		require.Equal(t, core.StateRunning, stored.State, "a failed attempt keeps the slot")
		// The same delivery's answer, recorded twice, changes nothing more.
		_, ok, err = tb.s.PushRetry(tb.ctx, a, "503 again", time.Second)
		require.NoError(t, err)
		require.False(t, ok, "the first answer moved PushAt: this delivery is fenced off")

		pushed, err := tb.s.Repush(tb.ctx, a.ID)
		require.NoError(t, err)
		require.False(t, pushed, "not before the retry is due")
		tb.clock.Advance(2 * time.Second)
		pushed, err = tb.s.Repush(tb.ctx, a.ID)
		require.NoError(t, err)
		require.True(t, pushed)
		again := pusher.take()
		require.Equal(t, []string{a.ID}, pushedIDs(again))
		require.Equal(t, 1, again[0].PushAttempts, "one delivery made before this one")

		// The first delivery's late failure cannot end the second.
		stale, err := tb.s.PushFailed(tb.ctx, a, "late")
		require.NoError(t, err)
		require.Equal(t, core.StateRunning, stale.State)
		failed, err := tb.s.PushFailed(tb.ctx, again[0], "503 Service Unavailable")
		require.NoError(t, err)
		require.Equal(t, core.StateFailed, failed.State)
		require.Equal(t, 2, failed.PushAttempts)
		require.True(t, strings.HasPrefix(failed.Error, core.PushFailedCode+": 503"), failed.Error)
		msgs := tb.messagesOf(t, "acme", "acme", a.ID)
		require.Equal(t, []core.MessageType{core.MessageStarted, core.MessageType(core.StateFailed)}, messageTypes(msgs))
		require.Equal(t, failed.Error, msgs[1].Error, "the outcome carries the last error")
		evs := allEvents(t, tb.ctx, tb.b, core.AuditQuery{Tenant: "acme", From: T0.Add(-time.Hour), To: T0.Add(time.Hour), TaskID: a.ID})
		require.Equal(t, "push failed after 2 attempts", evs[len(evs)-1].Detail)

		// The slot went to b, which is pushed.
		b = tb.task(t, "globex", b.ID)
		require.Equal(t, core.StateRunning, b.State)
		require.True(t, b.Pushing())
		require.Equal(t, []string{b.ID}, pushedIDs(pusher.take()))
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, MaxParked: 10, Executor: core.ExecutorPush}, tb.stats(t, "p"))
	})

	t.Run("TenantSeesNoLease", func(t *testing.T) {
		t.Parallel()
		// The target holds the lease: the tenant's answers (the submission
		// that started the task, a read, a wait, a replay) go without it,
		// also once the target took the task (nothing pending to tell it
		// by); in a permit pool the tenant's recipient holds it, and sees it.
		tb, pusher := setupPush(t, pushCfg("p", 1, 10), poolCfg("q", 1, 10))
		req := core.SubmitRequest{Tenant: "acme", Pool: "p", Key: "k"}
		res, err := tb.s.Submit(tb.ctx, req)
		require.NoError(t, err)
		a := res.Task
		require.Equal(t, core.StateRunning, a.State)
		require.Empty(t, a.Lease, "the submission that started it goes without the lease")
		pushed := pusher.take()
		require.Equal(t, []string{a.ID}, pushedIDs(pushed))
		require.NotEmpty(t, pushed[0].Lease, "the target gets it")

		tenantReads := func(s *core.Scheduler) {
			t.Helper()
			for _, wait := range []time.Duration{0, time.Second} {
				view, err := s.WaitTask(tb.ctx, "acme", a.ID, wait)
				require.NoError(t, err)
				require.Equal(t, core.StateRunning, view.State)
				require.Empty(t, view.Lease, "wait %s", wait)
			}
			replay, err := s.Submit(tb.ctx, req)
			require.NoError(t, err)
			require.True(t, replay.Replayed)
			require.Equal(t, core.StateRunning, replay.Task.State)
			require.Empty(t, replay.Task.Lease, "a replay")
		}
		tenantReads(tb.s)
		require.NoError(t, tb.s.PushAccepted(tb.ctx, a.ID, pushed[0].Lease))
		tenantReads(tb.s)
		// Another process, with no pool read to go by, reads the pool.
		s2, err := core.New(core.Config{Backend: tb.b, Clock: tb.clock})
		require.NoError(t, err)
		tenantReads(s2)
		_, err = tb.s.WaitTask(tb.ctx, "globex", a.ID, 0)
		require.ErrorIs(t, err, core.ErrNotFound)

		// The target heartbeats and completes with the lease it was pushed.
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: pushed[0].Lease})
		require.NoError(t, err)
		tb.complete(t, pushed[0], core.StateSucceeded)
		view, err := tb.s.WaitTask(tb.ctx, "acme", a.ID, 0)
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, view.State)
		require.Empty(t, view.Lease, "nor once it ended")

		q := tb.submit(t, "acme", "q")
		require.Equal(t, core.StateRunning, q.State)
		require.NotEmpty(t, q.Lease, "a permit pool's submitter holds the lease")
		view, err = tb.s.WaitTask(tb.ctx, "acme", q.ID, 0)
		require.NoError(t, err)
		require.Equal(t, q.Lease, view.Lease)
	})

	t.Run("DispatchAndCancel", func(t *testing.T) {
		t.Parallel()
		tb, pusher := setupPush(t, pushCfg("p", 2, 10), poolCfg("q", 1, 10))
		// A permit pool's starts are not pushed.
		q := tb.submit(t, "acme", "q")
		require.False(t, q.Pushing())
		require.Empty(t, pusher.take())
		require.NoError(t, tb.s.PutPool(tb.ctx, pushCfg("p", 0+1, 10)))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		require.Equal(t, core.StateParked, b.State)
		pusher.take()
		// Raising the capacity starts b by dispatch: pushed.
		require.NoError(t, tb.s.PutPool(tb.ctx, pushCfg("p", 2, 10)))
		require.Equal(t, []string{b.ID}, pushedIDs(pusher.take()))
		// A cancelled pending task is not pushed again.
		_, err := tb.s.Cancel(tb.ctx, "acme", a.ID)
		require.NoError(t, err)
		tb.clock.Advance(2 * pushHold)
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.Pushed, "b alone")
		require.Equal(t, []string{b.ID}, pushedIDs(pusher.take()))
	})
}
