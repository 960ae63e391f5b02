package core

import (
	"errors"
	"testing"

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
