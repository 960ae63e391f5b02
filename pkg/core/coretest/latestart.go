package coretest

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// exerciseLateStart checks that the audit order (core.Txn.StampAfter) never
// trades the deadline: a start decided just before its task's deadline,
// which the pool's order would move to or past it (another scheduler, its
// clock ahead, committed a transition of the pool stamped later), is
// refused, and the task ends expired without ever starting. It takes each
// path that starts a parked task: a release's hand-off (then dispatch), a
// submission admitted at once, and a claim of a pull pool. The observer
// reads the tasks and the audit trail: no task starts at or after its
// deadline, the three end expired with no start, and each pool's events
// replay within its capacity.
func exerciseLateStart(t *testing.T, newBackend NewBackend) {
	t.Run("NoStartRestampedPastTheDeadline", func(t *testing.T) {
		t.Parallel()
		const (
			ahead   = 30 * time.Second // the other scheduler's clock
			maxWait = 5 * time.Second  // the late tasks' wait: far below ahead
		)
		ctx := t.Context()
		b := newBackend(t, core.SystemClock{})
		logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		newSched := func(off time.Duration) *core.Scheduler {
			s, err := core.New(core.Config{Backend: b, Clock: offsetClock(off), Logger: logger, MailboxPoll: 5 * time.Millisecond})
			require.NoError(t, err)
			return s
		}
		here, there := newSched(0), newSched(ahead)
		for _, cfg := range []core.PoolConfig{
			{Name: "late", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: time.Hour},
			{Name: "late-pull", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: time.Hour, Executor: core.ExecutorPull},
		} {
			require.NoError(t, here.PutPool(ctx, cfg))
		}
		from := time.Now().UTC().Add(-time.Hour)
		const tenant = "acme"
		submit := func(s *core.Scheduler, pool string, wait time.Duration) core.Task {
			t.Helper()
			res, err := s.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: pool, MaxWait: wait})
			require.NoError(t, err)
			return res.Task
		}
		// ended waits for task id to end as state, dispatching its pool
		// meanwhile.
		ended := func(id string, state core.State) core.Task {
			t.Helper()
			for start := time.Now(); ; {
				task, err := b.Task(ctx, id)
				require.NoError(t, err)
				if task.State.Terminal() {
					require.Equal(t, state, task.State, "%s ended %s", id, task.State)
					return task
				}
				// Nothing here completes a task that ended waits for.
				require.NotEqual(t, core.StateRunning, task.State, "%s started at %s, its deadline %s",
					id, task.StartedAt.Format(time.RFC3339Nano), task.Deadline.Format(time.RFC3339Nano))
				require.Less(t, time.Since(start), wakeGuard, "%s still %s", id, task.State)
				if task.Pool != "late-pull" {
					_, err = here.Dispatch(ctx, task.Pool)
					require.NoError(t, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		var late []string // the tasks that must end expired, never started

		// A hand-off: the holder's release would start y in the same
		// transaction, restamped past y's deadline by the cancel of z that
		// the scheduler ahead committed.
		holder := submit(here, "late", 0)
		require.Equal(t, core.StateRunning, holder.State)
		y := submit(here, "late", maxWait)
		require.Equal(t, core.StateParked, y.State)
		z := submit(here, "late", 0)
		require.Equal(t, core.StateParked, z.State)
		_, err := there.Cancel(ctx, tenant, z.ID)
		require.NoError(t, err)
		_, err = here.Complete(ctx, core.CompleteRequest{Tenant: tenant, TaskID: holder.ID, Lease: holder.Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
		ended(y.ID, core.StateExpired)
		late = append(late, y.ID)

		// A submission admitted at once: the pool is free, but its last
		// stamp lies past the new task's deadline.
		w := submit(here, "late", maxWait)
		require.NotEqual(t, core.StateRunning, w.State, "admitted at %s, deadline %s", w.StartedAt, w.Deadline)
		ended(w.ID, core.StateExpired)
		late = append(late, w.ID)

		// A claim: v is parked; the scheduler ahead parks x after it. A
		// claim that takes v finds its start restamped past the deadline.
		v := submit(here, "late-pull", maxWait)
		x := submit(there, "late-pull", 0)
		worker := core.Worker{Name: "w", Pools: []string{"late-pull"}}
		for range 20 {
			got, err := here.Claim(ctx, core.ClaimRequest{Worker: worker, Pool: "late-pull"})
			require.NoError(t, err)
			for _, c := range got {
				_, err := here.Complete(ctx, core.CompleteRequest{Worker: &worker, TaskID: c.ID, Lease: c.Lease, Status: core.StateSucceeded})
				require.NoError(t, err)
			}
			tv, err := b.Task(ctx, v.ID)
			require.NoError(t, err)
			tx, err := b.Task(ctx, x.ID)
			require.NoError(t, err)
			if tv.State.Terminal() && tx.State.Terminal() {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		ended(v.ID, core.StateExpired)
		late = append(late, v.ID)
		ended(x.ID, core.StateSucceeded)

		// The observer.
		to := time.Now().UTC().Add(time.Hour + ahead)
		evs := allEvents(t, ctx, b, core.AuditQuery{Tenant: tenant, From: from, To: to})
		for _, id := range []string{holder.ID, y.ID, z.ID, w.ID, v.ID, x.ID} {
			task, err := b.Task(ctx, id)
			require.NoError(t, err)
			require.True(t, task.State.Terminal(), "%s ended %s", id, task.State)
			if !task.StartedAt.IsZero() {
				require.True(t, task.StartedAt.Before(task.Deadline), "%s started at %s, at or after its deadline %s",
					id, task.StartedAt.Format(time.RFC3339Nano), task.Deadline.Format(time.RFC3339Nano))
			}
			for _, e := range evs {
				if e.TaskID == id && e.To == core.StateRunning {
					require.True(t, e.At.Before(task.Deadline), "%s: start event at %s, at or after its deadline %s",
						id, e.At.Format(time.RFC3339Nano), task.Deadline.Format(time.RFC3339Nano))
				}
			}
			if slices.Contains(late, id) {
				require.True(t, task.StartedAt.IsZero(), "%s started at %s", id, task.StartedAt)
				for _, e := range evs {
					require.False(t, e.TaskID == id && e.To == core.StateRunning, "%s has a start event", id)
				}
			}
		}
		for _, pool := range []string{"late", "late-pull"} {
			var pe []core.Event
			for _, e := range evs {
				if e.Pool == pool {
					pe = append(pe, e)
				}
			}
			_, running, _ := replayWithin(t, pe, 1)
			require.Zero(t, running, "pool %s: the replay ends with tasks running", pool)
		}
	})
}

// replayWithin replays evs, one pool's events, in (At, Seq) order and
// fails t if the replay shows more than capacity running, or a task's event
// that does not start from the state the one before it left. It returns
// the peak and the final number running, and each task's last state.
func replayWithin(t *testing.T, evs []core.Event, capacity int) (peak, running int, state map[string]core.State) {
	t.Helper()
	slices.SortStableFunc(evs, func(a, b core.Event) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return compareSeq(a.Seq, b.Seq)
	})
	state = map[string]core.State{}
	for i, e := range evs {
		require.Equal(t, state[e.TaskID], e.From, "event %d of %d: %s of %s from %q at %s (seq %d), but the replay has it %q",
			i, len(evs), e.Type, e.TaskID, e.From, e.At.Format(time.RFC3339Nano), e.Seq, state[e.TaskID])
		state[e.TaskID] = e.To
		if e.From == core.StateRunning {
			running--
		}
		if e.To == core.StateRunning {
			running++
		}
		peak = max(peak, running)
		require.LessOrEqual(t, running, capacity, "event %d of %d: %s of %s at %s (seq %d): the replay has %d running, capacity %d",
			i, len(evs), e.Type, e.TaskID, e.At.Format(time.RFC3339Nano), e.Seq, running, capacity)
	}
	return peak, running, state
}
