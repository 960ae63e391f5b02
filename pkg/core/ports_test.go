package core

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTxnCheckShape(t *testing.T) {
	t.Parallel()
	require.NoError(t, (&Txn{}).CheckShape())
	require.NoError(t, (&Txn{Tasks: []TaskWrite{{Task: Task{ID: "a"}}}}).CheckShape(), "a heartbeat names no pool")
	require.ErrorContains(t, (&Txn{ParkedDelta: 1}).CheckShape(), "without a pool")
	require.ErrorContains(t, (&Txn{FirstInLine: true}).CheckShape(), "without a pool")
	twice := &Txn{Pool: "p", Tasks: []TaskWrite{{Task: Task{ID: "a"}}, {Task: Task{ID: "b"}}, {Task: Task{ID: "a"}}}}
	require.ErrorContains(t, twice.CheckShape(), "task a written twice")
}

func TestTxnCheckPool(t *testing.T) {
	t.Parallel()
	pool := func(running, capacity, parked, maxParked int) Pool {
		return Pool{PoolConfig: PoolConfig{Capacity: capacity, MaxParked: maxParked}, Running: running, Parked: parked}
	}
	for _, c := range []struct {
		name string
		txn  Txn
		p    Pool
		want error
	}{
		{"start with a free slot", Txn{RunningDelta: 1, NeedSlot: true, FirstInLine: true}, pool(1, 2, 0, 5), nil},
		{"start on a full pool", Txn{RunningDelta: 1, NeedSlot: true}, pool(2, 2, 0, 5), ErrNoCapacity},
		{"start behind parked work", Txn{RunningDelta: 1, NeedSlot: true, FirstInLine: true}, pool(0, 2, 1, 5), ErrNoCapacity},
		{"hand-off within capacity", Txn{ParkedDelta: -1, NeedSlot: true}, pool(2, 2, 1, 5), nil},
		{"hand-off above a lowered capacity", Txn{ParkedDelta: -1, NeedSlot: true}, pool(3, 2, 1, 5), ErrNoCapacity},
		{"park with room", Txn{ParkedDelta: 1, NeedParkRoom: true}, pool(2, 2, 4, 5), nil},
		{"park on a full depth", Txn{ParkedDelta: 1, NeedParkRoom: true}, pool(2, 2, 5, 5), ErrPoolFull},
		{"no slot before a full depth", Txn{NeedSlot: true, RunningDelta: 1, NeedParkRoom: true}, pool(2, 2, 5, 5), ErrNoCapacity},
		{"no condition", Txn{RunningDelta: -1}, pool(9, 2, 9, 5), nil},
	} {
		c.txn.Pool = "p"
		err := c.txn.CheckPool(c.p)
		if c.want == nil {
			require.NoError(t, err, c.name)
			continue
		}
		require.True(t, errors.Is(err, c.want), "%s: %v", c.name, err)
		require.ErrorContains(t, err, "pool p", c.name)
	}
}

// TestTxnSlotMissingOn: the part-wise checks awsstore's slot shards use
// agree with the whole-pool ones.
func TestTxnSlotMissingOn(t *testing.T) {
	t.Parallel()
	start := Txn{RunningDelta: 1, NeedSlot: true, FirstInLine: true}
	require.False(t, start.SlotMissingOn(1, 1, 2), "a free slot on the shard")
	require.True(t, start.SlotMissingOn(2, 1, 2), "a full shard")
	require.True(t, start.SlotMissingOn(3, 0, 2), "a shard above a lowered capacity, nothing added")
	require.False(t, start.SlotMissingOn(2, 0, 2), "a hand-off within the shard's capacity")
	require.Equal(t, start.SlotMissing(4, 4), start.SlotMissingOn(4, start.RunningDelta, 4))
	require.False(t, (&Txn{RunningDelta: 1}).SlotMissingOn(9, 1, 2), "no NeedSlot, no check")

	require.True(t, start.Overtakes(1))
	require.False(t, start.Overtakes(0))
	require.False(t, (&Txn{NeedSlot: true}).Overtakes(5), "not FirstInLine")
}

func TestTaskWriteConflicts(t *testing.T) {
	t.Parallel()
	create := TaskWrite{Expect: 0}
	require.False(t, create.Conflicts(false, 0, ""))
	require.True(t, create.Conflicts(true, 3, StateParked))
	update := TaskWrite{Expect: 3}
	require.False(t, update.Conflicts(true, 3, StateRunning))
	require.True(t, update.Conflicts(true, 4, StateRunning))
	require.True(t, update.Conflicts(false, 0, ""))
	fromCopy := TaskWrite{Expect: 3, ExpectState: StateParked}
	require.False(t, fromCopy.Conflicts(true, 3, StateParked))
	require.True(t, fromCopy.Conflicts(true, 3, StateCancelled), "the version reached by another write")
	require.True(t, fromCopy.Conflicts(true, 2, StateParked))
	require.True(t, fromCopy.Conflicts(false, 0, ""))
}

func TestTxnStampAfter(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	later := t0.Add(5 * time.Millisecond)
	// A hand-off decided at t0: a release and a parked task's start.
	handOff := func() *Txn {
		done := Task{ID: "a", Tenant: "acme", Pool: "p", State: StateSucceeded, SubmittedAt: t0.Add(-time.Hour),
			StartedAt: t0.Add(-time.Minute), EndedAt: t0, LeaseExpiresAt: t0.Add(time.Minute)}
		run := Task{ID: "b", Tenant: "globex", Pool: "p", State: StateRunning, SubmittedAt: t0.Add(-time.Hour),
			Deadline: t0.Add(time.Hour), StartedAt: t0, LeaseExpiresAt: t0.Add(time.Minute), PushAt: t0.Add(time.Second)}
		return &Txn{
			Pool: "p", ParkedDelta: -1, NeedSlot: true,
			Tasks:    []TaskWrite{{Task: done, Expect: 3}, {Task: run, Expect: 1}},
			Events:   []Event{event(&done, t0, EventComplete, StateRunning, ""), event(&run, t0, EventStart, StateParked, "")},
			Messages: []Message{message(&done, MessageType(StateSucceeded), t0), message(&run, MessageStarted, t0)},
		}
	}

	txn := handOff()
	require.Equal(t, t0, txn.Stamp())
	require.False(t, txn.StampBehind(t0))
	require.Equal(t, t0, must(txn.StampAfter(t0.Add(-time.Second))), "a stamp after the pool's last one stays")
	require.Equal(t, t0, must(txn.StampAfter(t0)), "an equal stamp stays: sequence numbers order it")
	require.Equal(t, handOff(), txn)

	require.True(t, txn.StampBehind(later))
	require.Equal(t, later, must(txn.StampAfter(later)))
	for _, e := range txn.Events {
		require.Equal(t, later, e.At)
	}
	for _, m := range txn.Messages {
		require.Equal(t, later, m.At)
	}
	done, run := txn.Tasks[0].Task, txn.Tasks[1].Task
	require.Equal(t, later, done.EndedAt)
	require.Equal(t, t0.Add(-time.Minute), done.StartedAt, "an earlier start does not move")
	require.Equal(t, t0.Add(time.Minute), done.LeaseExpiresAt, "nor does its lease")
	require.Equal(t, t0.Add(-time.Hour), done.SubmittedAt)
	require.Equal(t, later, run.StartedAt)
	require.Equal(t, later.Add(time.Minute), run.LeaseExpiresAt, "the lease keeps its length")
	require.Equal(t, later.Add(time.Second), run.PushAt)
	require.Equal(t, t0.Add(time.Hour), run.Deadline, "deadlines do not move")
	require.Equal(t, t0.Add(-time.Hour), run.SubmittedAt)
	require.Equal(t, later.Add(time.Minute), txn.Messages[1].LeaseExpiresAt)

	// A submission admitted at once: submitted and started at the stamp.
	sub := Task{ID: "c", Tenant: "acme", Pool: "p", State: StateRunning, SubmittedAt: t0, StartedAt: t0, LeaseExpiresAt: t0.Add(time.Minute)}
	admit := admitTxn(sub, nil, t0)
	must(admit.StampAfter(later))
	require.Equal(t, later, admit.Tasks[0].Task.SubmittedAt)
	require.Equal(t, later, admit.Tasks[0].Task.StartedAt)
	require.Equal(t, later.Add(time.Minute), admit.Tasks[0].Task.LeaseExpiresAt)

	// No events, nothing to order: the pool keeps its stamp.
	hb := &Txn{Tasks: []TaskWrite{{Task: sub, Expect: 1}}}
	require.Equal(t, later, must(hb.StampAfter(later)))
	require.False(t, hb.StampBehind(later))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestTxnRestampRefusesLateStart: a restamp never moves a start to or past
// its task's deadline. It refuses (changing nothing, and StampAfter
// returns ErrLateStart, which matches ErrConflict) exactly when the start
// would land at or after the deadline; other times of the transaction
// (a release's end, a parked submission) move as far as they need.
func TestTxnRestampRefusesLateStart(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	deadline := t0.Add(10 * time.Millisecond)
	// A hand-off decided at t0, 10 ms before the parked task's deadline.
	handOff := func() *Txn {
		done := Task{ID: "a", Tenant: "acme", Pool: "p", State: StateSucceeded, SubmittedAt: t0.Add(-time.Hour),
			Deadline: t0.Add(-time.Hour), StartedAt: t0.Add(-time.Minute), EndedAt: t0, LeaseExpiresAt: t0.Add(time.Minute)}
		run := Task{ID: "b", Tenant: "globex", Pool: "p", State: StateRunning, SubmittedAt: t0.Add(-time.Hour),
			Deadline: deadline, StartedAt: t0, LeaseExpiresAt: t0.Add(time.Minute), PushAt: t0.Add(time.Second)}
		return &Txn{
			Pool: "p", ParkedDelta: -1, NeedSlot: true,
			Tasks:    []TaskWrite{{Task: done, Expect: 3}, {Task: run, Expect: 1}},
			Events:   []Event{event(&done, t0, EventComplete, StateRunning, ""), event(&run, t0, EventStart, StateParked, "")},
			Messages: []Message{message(&done, MessageType(StateSucceeded), t0), message(&run, MessageStarted, t0)},
		}
	}

	// Just before the deadline: allowed, the lease and the push move along.
	txn := handOff()
	justBefore := deadline.Add(-time.Nanosecond)
	require.False(t, txn.StartsBy(justBefore.Sub(t0)))
	require.Equal(t, justBefore, must(txn.StampAfter(justBefore)))
	run := txn.Tasks[1].Task
	require.Equal(t, justBefore, run.StartedAt)
	require.Equal(t, justBefore.Add(time.Minute), run.LeaseExpiresAt, "the lease end moves with the start")
	require.Equal(t, justBefore.Add(time.Second), run.PushAt, "the push moves with the start")
	require.Equal(t, justBefore.Add(time.Minute), txn.Messages[1].LeaseExpiresAt)
	require.Equal(t, deadline, run.Deadline)

	// At the deadline, and past it: refused, nothing moved.
	for _, last := range []time.Time{deadline, deadline.Add(time.Hour)} {
		txn := handOff()
		require.True(t, txn.StartsBy(last.Sub(t0)))
		require.False(t, txn.Restamp(last), "a start moved to %s, its deadline %s", last, deadline)
		require.Equal(t, handOff(), txn, "a refused restamp changes nothing")
		_, err := txn.StampAfter(last)
		require.ErrorIs(t, err, ErrLateStart)
		require.ErrorIs(t, err, ErrConflict, "core re-reads on ErrLateStart as on a conflict")
		require.Equal(t, handOff(), txn)
	}

	// A transaction without a start moves past any deadline: the release
	// alone, a parked submission, an expiry.
	release := handOff()
	release.Tasks = release.Tasks[:1]
	release.Events = release.Events[:1]
	release.Messages = release.Messages[:1]
	late := deadline.Add(time.Hour)
	require.False(t, release.StartsBy(late.Sub(t0)))
	require.Equal(t, late, must(release.StampAfter(late)))
	require.Equal(t, late, release.Tasks[0].Task.EndedAt)

	parked := Task{ID: "c", Tenant: "acme", Pool: "p", State: StateParked, SubmittedAt: t0, Deadline: deadline}
	park := parkTxn(parked, nil, t0)
	require.Equal(t, late, must(park.StampAfter(late)))
	require.Equal(t, late, park.Tasks[0].Task.SubmittedAt)

	// A submission admitted at once, with a deadline 10 ms on: its start
	// may not move to the deadline either.
	sub := Task{ID: "d", Tenant: "acme", Pool: "p", State: StateRunning, SubmittedAt: t0, Deadline: deadline,
		StartedAt: t0, LeaseExpiresAt: t0.Add(time.Minute)}
	admit := admitTxn(sub, nil, t0)
	_, err := admit.StampAfter(deadline)
	require.ErrorIs(t, err, ErrLateStart)
	require.Equal(t, t0, admit.Tasks[0].Task.StartedAt)
	require.Equal(t, t0, admit.Events[0].At)
	require.Equal(t, justBefore, must(admit.StampAfter(justBefore)))
	require.Equal(t, justBefore, admit.Tasks[0].Task.StartedAt)
	require.Equal(t, justBefore, admit.Tasks[0].Task.SubmittedAt)
}
