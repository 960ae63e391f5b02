package awsstore_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func poolCfg(name string, capacity, maxParked int) core.PoolConfig {
	return core.PoolConfig{Name: name, Capacity: capacity, MaxParked: maxParked, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}
}

func runningTask(id, pool string) core.Task {
	return core.Task{
		ID: id, Tenant: "acme", Pool: pool, Recipient: "acme", State: core.StateRunning,
		Payload: json.RawMessage(`{"n":1}`), SubmittedAt: t0, Deadline: t0.Add(time.Minute),
		RunTimeout: time.Minute, StartedAt: t0, Lease: "lease-" + id, LeaseExpiresAt: t0.Add(time.Minute),
		BodyHash: "h",
	}
}

func TestPoolRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)

	_, err := b.store.Pool(ctx, "gpu")
	require.ErrorIs(t, err, core.ErrPoolNotFound)

	require.NoError(t, b.store.PutPool(ctx, poolCfg("gpu", 2, 5)))
	require.NoError(t, b.store.PutPool(ctx, poolCfg("cpu.small", 1, 0)))
	require.NoError(t, b.store.Commit(ctx, &core.Txn{Pool: "gpu", RunningDelta: 1, NeedSlot: true,
		Tasks: []core.TaskWrite{{Task: runningTask("a", "gpu")}}}))

	// Reconfiguring keeps the counters.
	require.NoError(t, b.store.PutPool(ctx, poolCfg("gpu", 3, 7)))
	p, err := b.store.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, core.Pool{PoolConfig: poolCfg("gpu", 3, 7), Running: 1}, p)

	ps, err := b.store.Pools(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	require.Equal(t, "cpu.small", ps[0].Name)
	require.Equal(t, "gpu", ps[1].Name)
}

func TestTaskRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	require.NoError(t, b.store.PutPool(ctx, poolCfg("gpu", 2, 5)))

	_, err := b.store.Task(ctx, "nope")
	require.ErrorIs(t, err, core.ErrNotFound)

	want := runningTask("t1", "gpu")
	want.Key = "k#1%"
	want.Result = json.RawMessage(`"ok"`)
	want.Error = "boom"
	require.NoError(t, b.store.Commit(ctx, &core.Txn{Pool: "gpu", RunningDelta: 1, NeedSlot: true,
		Tasks: []core.TaskWrite{{Task: want}},
		Key:   &core.KeyRecord{Tenant: "ac#me", Key: want.Key, TaskID: want.ID, BodyHash: "h"}}))
	got, err := b.store.Task(ctx, "t1")
	require.NoError(t, err)
	want.Version = 1
	require.Equal(t, want, got)

	rec, err := b.store.Key(ctx, "ac#me", want.Key)
	require.NoError(t, err)
	require.Equal(t, core.KeyRecord{Tenant: "ac#me", Key: want.Key, TaskID: "t1", BodyHash: "h"}, rec)
	_, err = b.store.Key(ctx, "ac", "me#"+want.Key)
	require.ErrorIs(t, err, core.ErrNotFound, "escaped key components do not collide")
}

func TestCommitConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	s := b.store
	require.NoError(t, s.PutPool(ctx, poolCfg("gpu", 1, 1)))

	admit := func(id string) *core.Txn {
		return &core.Txn{Pool: "gpu", RunningDelta: 1, NeedSlot: true, FirstInLine: true,
			Tasks: []core.TaskWrite{{Task: runningTask(id, "gpu")}}}
	}
	park := func(id string) *core.Txn {
		tk := runningTask(id, "gpu")
		tk.State, tk.Unsent = core.StateParked, true
		return &core.Txn{Pool: "gpu", ParkedDelta: 1, NeedParkRoom: true, Tasks: []core.TaskWrite{{Task: tk}}}
	}

	err := s.Commit(ctx, &core.Txn{Pool: "nope", RunningDelta: 1, NeedSlot: true, Tasks: []core.TaskWrite{{Task: runningTask("x", "nope")}}})
	require.ErrorIs(t, err, core.ErrPoolNotFound)

	require.NoError(t, s.Commit(ctx, admit("a")))
	require.ErrorIs(t, s.Commit(ctx, admit("b")), core.ErrNoCapacity)
	require.NoError(t, s.Commit(ctx, park("c")))
	require.ErrorIs(t, s.Commit(ctx, park("d")), core.ErrPoolFull)

	// The task item is the first failing condition: its conflict is named
	// even though the pool is full too.
	require.ErrorIs(t, s.Commit(ctx, admit("a")), core.ErrConflict)

	// FirstInLine: a free slot is not taken while a task is parked.
	a, err := s.Task(ctx, "a")
	require.NoError(t, err)
	done := a
	done.State = core.StateSucceeded
	require.NoError(t, s.Commit(ctx, &core.Txn{Pool: "gpu", RunningDelta: -1, Tasks: []core.TaskWrite{{Task: done, Expect: a.Version}}}))
	require.ErrorIs(t, s.Commit(ctx, admit("e")), core.ErrNoCapacity)

	// A stale version conflicts; nothing of the failed transaction is applied.
	require.ErrorIs(t, s.Commit(ctx, &core.Txn{Pool: "gpu", RunningDelta: -1, Tasks: []core.TaskWrite{{Task: done, Expect: a.Version}}}), core.ErrConflict)
	p, err := s.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, 0, p.Running)
	require.Equal(t, 1, p.Parked)
	_, err = s.Task(ctx, "b")
	require.ErrorIs(t, err, core.ErrNotFound)

	// The key is named when only it fails.
	key := &core.KeyRecord{Tenant: "acme", Key: "k", TaskID: "f", BodyHash: "h"}
	tf := runningTask("f", "gpu")
	tf.State = core.StateRejected
	require.NoError(t, s.Commit(ctx, &core.Txn{Pool: "gpu", Tasks: []core.TaskWrite{{Task: tf}}, Key: key}))
	tg := tf
	tg.ID = "g"
	require.ErrorIs(t, s.Commit(ctx, &core.Txn{Pool: "gpu", Tasks: []core.TaskWrite{{Task: tg}}, Key: key}), core.ErrKeyExists)
	_, err = s.Task(ctx, "g")
	require.ErrorIs(t, err, core.ErrNotFound)
}
