package awsstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/awsstore/awsfault"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// shardState is a slot shard item as stored, read with the raw client.
type shardState struct {
	Capacity  int `dynamodbav:"capacity"`
	Running   int `dynamodbav:"running"`
	HasParked int `dynamodbav:"hasParked"`
	Shards    int `dynamodbav:"shards"`
}

// readShardItems reads the shard items POOL#<pool>#<i> straight from the
// table, not through the store.
func readShardItems(t *testing.T, b *bundle, pool string, n int) []shardState {
	t.Helper()
	out := make([]shardState, n)
	for i := range n {
		res, err := b.ddb.GetItem(context.Background(), &dynamodb.GetItemInput{
			TableName: aws.String(b.opts.Table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("POOL#%s#%d", pool, i)},
				"sk": &types.AttributeValueMemberS{Value: "SHARD"},
			},
		})
		require.NoError(t, err)
		require.NotNil(t, res.Item, "shard %d of %s missing", i, pool)
		require.NoError(t, attributevalue.UnmarshalMap(res.Item, &out[i]))
	}
	return out
}

// taskSlot reads the slot attribute of a task item straight from the table.
func taskSlot(t *testing.T, b *bundle, id string) (int, bool) {
	t.Helper()
	res, err := b.ddb.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(b.opts.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "TASK#" + id},
			"sk": &types.AttributeValueMemberS{Value: "TASK"},
		},
	})
	require.NoError(t, err)
	var it struct {
		Slot *int `dynamodbav:"slot"`
	}
	require.NoError(t, attributevalue.UnmarshalMap(res.Item, &it))
	if it.Slot == nil {
		return 0, false
	}
	return *it.Slot, true
}

// secondStore is another Store over b's table and queues: another process.
func secondStore(t *testing.T, b *bundle) *awsstore.Store {
	t.Helper()
	s, err := awsstore.New(context.Background(), b.opts)
	require.NoError(t, err)
	return s
}

func shardedCfg(name string, capacity, maxParked, shards int) core.PoolConfig {
	cfg := poolCfg(name, capacity, maxParked)
	cfg.SlotShards = shards
	return cfg
}

// peak tracks a count and the highest value it reached.
type peak struct{ n, max atomic.Int64 }

func (p *peak) add(d int64) {
	n := p.n.Add(d)
	for m := p.max.Load(); n > m && !p.max.CompareAndSwap(m, n); m = p.max.Load() {
	}
}

// TestShardedConcurrentAdmissionHoldsCapacity races 24 goroutines over two
// Stores (two processes on one table), each taking and giving back slots of
// a capacity-5 pool spread over 3 shards (capacities 2, 2, 1). The observer
// is the goroutines' own count of held slots (raised after a start commits,
// lowered before its release is sent), which never exceeds what the table
// holds: it never passes 5. Every shard item ends at 0, and every shard
// served starts.
func TestShardedConcurrentAdmissionHoldsCapacity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	const capacity, shards, workers, rounds = 5, 3, 24, 6
	require.NoError(t, b.store.PutPool(ctx, shardedCfg("hot", capacity, 0, shards)))
	stores := []*awsstore.Store{b.store, secondStore(t, b)}

	var held peak
	var taken, refused atomic.Int64
	var mu sync.Mutex
	used := map[string]int{} // starts by the shard their task item records
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		st := stores[w%len(stores)]
		wg.Go(func() {
			for r := range rounds {
				id := fmt.Sprintf("w%d-r%d", w, r)
				tk := runningTask(id, "hot")
				err := st.Commit(ctx, &core.Txn{Pool: "hot", RunningDelta: 1, NeedSlot: true, FirstInLine: true,
					Tasks: []core.TaskWrite{{Task: tk}}})
				if errors.Is(err, core.ErrNoCapacity) {
					refused.Add(1)
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				taken.Add(1)
				held.add(1)
				// Hold the slot for a round trip: read the shard it took.
				res, err := b.ddb.GetItem(ctx, &dynamodb.GetItemInput{
					TableName: aws.String(b.opts.Table), ConsistentRead: aws.Bool(true),
					Key: map[string]types.AttributeValue{
						"pk": &types.AttributeValueMemberS{Value: "TASK#" + id},
						"sk": &types.AttributeValueMemberS{Value: "TASK"},
					},
				})
				if err != nil {
					errs <- err
					return
				}
				if slot, ok := res.Item["slot"].(*types.AttributeValueMemberN); ok {
					mu.Lock()
					used[slot.Value]++
					mu.Unlock()
				}
				held.add(-1)
				done := tk
				done.State = core.StateSucceeded
				if err := st.Commit(ctx, &core.Txn{Pool: "hot", RunningDelta: -1, FirstInLine: true,
					Tasks: []core.TaskWrite{{Task: done, Expect: 1}}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("taken %d, refused %d, peak held %d", taken.Load(), refused.Load(), held.max.Load())
	require.LessOrEqual(t, held.max.Load(), int64(capacity))
	require.Equal(t, int64(workers*rounds), taken.Load()+refused.Load())
	require.Positive(t, refused.Load(), "24 workers on 5 slots must be refused at times, or the race was not run")

	items := readShardItems(t, b, "hot", shards)
	t.Logf("starts by shard: %v", used)
	total := 0
	for i, sh := range items {
		require.Equal(t, 0, sh.Running, "shard %d keeps slots", i)
		require.Equal(t, shards, sh.Shards)
		require.Positive(t, used[fmt.Sprint(i)], "shard %d never used", i)
		total += used[fmt.Sprint(i)]
	}
	require.Equal(t, int(taken.Load()), total, "a started task without a slot")
	for w := range workers {
		for r := range rounds {
			_, holds := taskSlot(t, b, fmt.Sprintf("w%d-r%d", w, r))
			require.False(t, holds, "an ended task still records a slot")
		}
	}
	require.Equal(t, []int{2, 2, 1}, []int{items[0].Capacity, items[1].Capacity, items[2].Capacity})
	p, err := b.store.Pool(ctx, "hot")
	require.NoError(t, err)
	require.Equal(t, 0, p.Running)
}

// slotObserver counts running tasks from the scheduler's own reports: a
// start raises the count once committed; the worker lowers it before it
// sends the completion.
type slotObserver struct {
	held    peak
	mu      sync.Mutex
	started map[string]chan struct{}
	starts  map[string]int
}

func (o *slotObserver) ch(id string) chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.started[id]
	if c == nil {
		c = make(chan struct{})
		o.started[id] = c
	}
	return c
}

func (o *slotObserver) Started(t *core.Task, _ time.Duration) {
	o.held.add(1)
	o.mu.Lock()
	o.starts[t.ID]++
	o.mu.Unlock()
	close(o.ch(t.ID))
}

func (o *slotObserver) Ended(*core.Task) {}

// TestShardedLifecyclesThroughCore runs whole lifecycles through two
// schedulers over two Stores on a capacity-3 pool of 3 shards (one slot
// each): submissions that find no slot park, completions hand their slot to
// parked work or release it. The observer never sees more than 3 running;
// every task succeeds with exactly one start (audit); the counters end at 0
// and no shard is left flagged as having parked work.
func TestShardedLifecyclesThroughCore(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{visibility: 5 * time.Second})
	ctx := testCtx(t)
	const capacity, shards, workers, rounds = 3, 3, 9, 4
	obs := &slotObserver{started: map[string]chan struct{}{}, starts: map[string]int{}}
	var scheds []*core.Scheduler
	for _, st := range []*awsstore.Store{b.store, secondStore(t, b)} {
		s, err := core.New(core.Config{Backend: st, Observer: obs})
		require.NoError(t, err)
		scheds = append(scheds, s)
	}
	require.NoError(t, scheds[0].PutPool(ctx, shardedCfg("hot", capacity, 1000, shards)))

	var parkedN atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var mu sync.Mutex
	var ids []string
	for w := range workers {
		s := scheds[w%len(scheds)]
		tenant := fmt.Sprintf("t%d", w)
		wg.Go(func() {
			for range rounds {
				res, err := s.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: "hot", Payload: []byte(`{}`)})
				if err != nil {
					errs <- err
					return
				}
				tk := res.Task
				mu.Lock()
				ids = append(ids, tk.ID)
				mu.Unlock()
				if tk.State == core.StateParked {
					parkedN.Add(1)
				}
				// Wait for the start: a hand-off or a wake-up on another
				// goroutine, or a dispatch of this one's while waiting.
				for waited := 0; ; waited++ {
					select {
					case <-obs.ch(tk.ID):
					case <-time.After(2 * time.Second):
						if waited == 15 {
							errs <- fmt.Errorf("task %s never started", tk.ID)
							return
						}
						if _, err := s.Dispatch(ctx, "hot"); err != nil && !errors.Is(err, core.ErrNoCapacity) {
							errs <- err
							return
						}
						continue
					}
					break
				}
				tk, err = s.Task(ctx, tenant, tk.ID)
				if err != nil {
					errs <- err
					return
				}
				obs.held.add(-1)
				if _, err := s.Complete(ctx, core.CompleteRequest{Tenant: tenant, TaskID: tk.ID, Lease: tk.Lease,
					Status: core.StateSucceeded, Result: []byte(`{}`)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d tasks, %d parked, peak running %d", len(ids), parkedN.Load(), obs.held.max.Load())
	require.LessOrEqual(t, obs.held.max.Load(), int64(capacity))
	require.Positive(t, parkedN.Load(), "9 workers on 3 slots must park at times")
	require.Len(t, ids, workers*rounds)
	for _, id := range ids {
		require.Equal(t, 1, obs.starts[id], "task %s", id)
		tk, err := b.store.Task(ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, tk.State)
		_, holds := taskSlot(t, b, id)
		require.False(t, holds, "ended task %s still records a slot", id)
	}
	for w := range workers {
		evs, err := b.store.Events(ctx, core.AuditQuery{Tenant: fmt.Sprintf("t%d", w),
			From: time.Unix(0, 0), To: time.Now().Add(time.Hour), Limit: 1000})
		require.NoError(t, err)
		starts := map[string]int{}
		for _, e := range evs {
			if e.To == core.StateRunning {
				starts[e.TaskID]++
			}
		}
		require.Len(t, starts, rounds)
		for id, n := range starts {
			require.Equal(t, 1, n, "task %s started %d times", id, n)
		}
	}
	p, err := b.store.Pool(ctx, "hot")
	require.NoError(t, err)
	require.Equal(t, 0, p.Running)
	require.Equal(t, 0, p.Parked)
	for i, sh := range readShardItems(t, b, "hot", shards) {
		require.Equal(t, 0, sh.Running, "shard %d", i)
		require.Equal(t, 0, sh.HasParked, "shard %d still flags parked work", i)
	}
}

// TestSlotShardsReconfigure changes a pool's shard count: refused while a
// task runs, done when none does, and seen by another Store that still has
// the old layout cached (its transactions fail their layout conditions and
// it re-reads the pool).
func TestSlotShardsReconfigure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	other := secondStore(t, b)
	require.NoError(t, b.store.PutPool(ctx, poolCfg("p", 4, 10)))
	_, err := other.Pool(ctx, "p") // other caches the unsharded layout
	require.NoError(t, err)

	run := runningTask("a", "p")
	require.NoError(t, b.store.Commit(ctx, &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true, Tasks: []core.TaskWrite{{Task: run}}}))
	err = b.store.PutPool(ctx, shardedCfg("p", 4, 10, 2))
	var ie *core.InvalidError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "slotShards", ie.Field)
	require.ErrorContains(t, err, "while 1 tasks run")
	p, err := b.store.Pool(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 0, p.SlotShards)
	require.Equal(t, 1, p.Running)

	done := run
	done.State = core.StateSucceeded
	require.NoError(t, b.store.Commit(ctx, &core.Txn{Pool: "p", RunningDelta: -1, Tasks: []core.TaskWrite{{Task: done, Expect: 1}}}))
	// Park one, so that the new shards must flag parked work.
	park := runningTask("q", "p")
	park.State = core.StateParked
	require.NoError(t, b.store.Commit(ctx, &core.Txn{Pool: "p", ParkedDelta: 1, NeedParkRoom: true, Tasks: []core.TaskWrite{{Task: park}}}))
	require.NoError(t, b.store.PutPool(ctx, shardedCfg("p", 4, 10, 2)))
	items := readShardItems(t, b, "p", 2)
	require.Equal(t, []shardState{{Capacity: 2, HasParked: 1, Shards: 2}, {Capacity: 2, HasParked: 1, Shards: 2}}, items)

	// other still takes the pool as unsharded: its first-in-line start is
	// refused (something is parked), its start of the parked task lands on
	// a shard and clears the flags.
	fresh := runningTask("b", "p")
	err = other.Commit(ctx, &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true, FirstInLine: true, Tasks: []core.TaskWrite{{Task: fresh}}})
	require.ErrorIs(t, err, core.ErrNoCapacity)
	start := park
	start.State = core.StateRunning
	require.NoError(t, other.Commit(ctx, &core.Txn{Pool: "p", RunningDelta: 1, ParkedDelta: -1, NeedSlot: true, Tasks: []core.TaskWrite{{Task: start, Expect: 1}}}))
	slot, ok := taskSlot(t, b, "q")
	require.True(t, ok)
	items = readShardItems(t, b, "p", 2)
	require.Equal(t, 1, items[slot].Running)
	require.Equal(t, 0, items[0].HasParked+items[1].HasParked)

	// A third Store that never read the pool heartbeats the task (a put of
	// a running task, no pool in the transaction): the slot stays recorded.
	third := secondStore(t, b)
	beat := start
	beat.LeaseExpiresAt = beat.LeaseExpiresAt.Add(time.Minute)
	require.NoError(t, third.Commit(ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: beat, Expect: 2}}}))
	again, ok := taskSlot(t, b, "q")
	require.True(t, ok)
	require.Equal(t, slot, again)

	// Back to unsharded is refused while q runs, and done once it ended.
	require.ErrorAs(t, b.store.PutPool(ctx, poolCfg("p", 4, 10)), &ie)
	end := beat
	end.State = core.StateSucceeded
	require.NoError(t, third.Commit(ctx, &core.Txn{Pool: "p", RunningDelta: -1, FirstInLine: true, Tasks: []core.TaskWrite{{Task: end, Expect: 3}}}))
	require.Equal(t, 0, readShardItems(t, b, "p", 2)[slot].Running)
	require.NoError(t, b.store.PutPool(ctx, poolCfg("p", 4, 10)))
	p, err = other.Pool(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 0, p.SlotShards)
	require.Equal(t, 0, p.Running)
	res, err := b.ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(b.opts.Table), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "POOL#p#0"}, "sk": &types.AttributeValueMemberS{Value: "SHARD"},
	}})
	require.NoError(t, err)
	require.Nil(t, res.Item, "shard items deleted")
	// other's cached layout is stale again (sharded): its start is counted
	// on the pool item.
	require.NoError(t, other.Commit(ctx, &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true, FirstInLine: true, Tasks: []core.TaskWrite{{Task: fresh}}}))
	p, err = b.store.Pool(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 1, p.Running)
	_, ok = taskSlot(t, b, "b")
	require.False(t, ok)
}

// TestShardedPutPoolUnchangedWritesNothing: a process that starts with the
// pool's configuration (every Lambda cold start) reads the pool and writes
// nothing, so it cannot conflict with the pool's transactions; a change of
// capacity re-splits the shares.
func TestShardedPutPoolUnchangedWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	cfg := shardedCfg("p", 7, 10, 3)
	require.NoError(t, b.store.PutPool(ctx, cfg))
	require.Equal(t, []int{3, 2, 2}, capacities(readShardItems(t, b, "p", 3)))

	before := b.counter.Snapshot()
	require.NoError(t, secondStore(t, b).PutPool(ctx, cfg))
	used := b.counter.Snapshot().Sub(before)
	require.Zero(t, used["DynamoDB.TransactWriteItems"].Calls)
	require.Zero(t, used["DynamoDB.UpdateItem"].Calls)

	// One task runs on some shard; raising the capacity to 10 keeps each
	// share at least its running count and spreads the free slots.
	require.NoError(t, b.store.Commit(ctx, &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true, Tasks: []core.TaskWrite{{Task: runningTask("a", "p")}}}))
	slot, ok := taskSlot(t, b, "a")
	require.True(t, ok)
	cfg.Capacity = 10
	require.NoError(t, b.store.PutPool(ctx, cfg))
	items := readShardItems(t, b, "p", 3)
	sum := 0
	for i, sh := range items {
		sum += sh.Capacity
		require.GreaterOrEqual(t, sh.Capacity-sh.Running, 3, "shard %d: free slots spread evenly", i)
	}
	require.Equal(t, 10, sum)
	require.Equal(t, 1, items[slot].Running)

	cfg.SlotShards = 65
	var ie *core.InvalidError
	require.ErrorAs(t, b.store.PutPool(ctx, cfg), &ie)
	require.Equal(t, "slotShards", ie.Field)
}

func capacities(items []shardState) []int {
	out := make([]int, len(items))
	for i, sh := range items {
		out[i] = sh.Capacity
	}
	return out
}

// TestPutPoolRetriesTransactionConflicts: an update of an unsharded pool
// that meets a transaction in flight on the pool item
// (TransactionConflictException, which the SDK does not retry) is tried
// again, and the pool is put.
func TestPutPoolRetriesTransactionConflicts(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	b := setup(t)
	inj := awsfault.New(b.ddb, b.sqs)
	opts := b.opts
	opts.DynamoDB, opts.SQS = inj.DynamoDB(), inj.SQS()
	s, err := awsstore.New(ctx, opts)
	require.NoError(t, err)
	var conflicts atomic.Int32
	inj.FailIf(func(op string) error {
		if op == "DynamoDB.UpdateItem" && conflicts.Add(1) <= 3 {
			return &types.TransactionConflictException{Message: aws.String("Transaction is ongoing for the item")}
		}
		return nil
	})
	cfg := core.PoolConfig{Name: "gpu", Capacity: 3, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}
	require.NoError(t, s.PutPool(ctx, cfg))
	require.EqualValues(t, 4, conflicts.Load(), "three conflicts, then the update")
	p, err := b.store.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, cfg, p.PoolConfig)
}
