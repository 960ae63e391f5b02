package awsstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// lifecycleCounts are the requests of the two task lifecycles, and the
// transactional item writes (condition checks included) each made to the
// pool item and to each slot shard item.
type lifecycleCounts struct {
	direct, parked               awsstore.Counts
	directTouches, parkedTouches map[string]int
}

// measureLifecycles counts, with the SDK middleware, the AWS requests and
// write units of the two task lifecycles of pool cfg in steady state (queue
// URL known, the pool read within Config.PoolHintAge by the process, as
// under steady traffic): submit→start→complete, and
// submit→park→wake→complete. The pool is filled to one free slot first.
// moto reports no consumed capacity for transactions, so write units are
// also modeled from the requests.
func measureLifecycles(t *testing.T, cfg core.PoolConfig) lifecycleCounts {
	b := setup(t)
	ctx := testCtx(t)
	clock := core.NewStubClock(t0)
	s, err := core.New(core.Config{Backend: b.store, Clock: clock, PoolHintAge: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, cfg))

	submit := func() core.Task {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: cfg.Name, Payload: []byte(`{"job":42}`)})
		require.NoError(t, err)
		return res.Task
	}
	complete := func(tk core.Task) {
		_, err := s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: tk.ID, Lease: tk.Lease, Status: core.StateSucceeded, Result: []byte(`{"ok":true}`)})
		require.NoError(t, err)
	}
	lease := func(id string) core.Task {
		tk, err := s.Task(ctx, "acme", id)
		require.NoError(t, err)
		require.Equal(t, core.StateRunning, tk.State)
		return tk
	}
	// All slots but one taken, for the whole measurement.
	for range cfg.Capacity - 1 {
		require.Equal(t, core.StateRunning, submit().State)
	}
	// Warm up: one of each lifecycle, so that caches are filled.
	w1 := submit()
	w2 := submit()
	complete(w1)
	complete(lease(w2.ID))

	var touches map[string]int
	measure := func(f func()) awsstore.Counts {
		before, tBefore := b.counter.Snapshot(), b.touches.snapshot()
		f()
		touches = b.touches.snapshot().sub(tBefore)
		return b.counter.Snapshot().Sub(before)
	}
	var out lifecycleCounts

	// submit→start→complete.
	var direct core.Task
	submitRun := measure(func() { direct = submit() })
	t1 := touches
	require.Equal(t, core.StateRunning, direct.State)
	completeIdle := measure(func() { complete(direct) })
	out.direct = merge(submitRun, completeIdle)
	out.directTouches = addTouches(t1, touches)

	// submit→park→wake→complete: a holds the last slot, b parks, a's
	// completion wakes b; the wake's share is a's completion minus an idle
	// completion.
	a := submit()
	var parked core.Task
	park := measure(func() { parked = submit() })
	t2 := touches
	require.Equal(t, core.StateParked, parked.State)
	completeWake := measure(func() { complete(a) })
	t3 := touches
	woken := lease(parked.ID)
	completeWoken := measure(func() { complete(woken) })
	wake := completeWake.Sub(completeIdle)
	out.parked = merge(park, wake, completeWoken)
	// a's completion is a's lifecycle; b's is the release that hands b
	// the slot plus b's own completion.
	out.parkedTouches = addTouches(t2, t3, touches)

	t.Logf("%s submit→start→complete:\n%s  total %s  item writes %v", cfg.Name, out.direct, line(out.direct.Total()), out.directTouches)
	t.Logf("%s submit→park→wake→complete:\n%s  total %s  item writes %v", cfg.Name, out.parked, line(out.parked.Total()), out.parkedTouches)
	t.Logf("  of which park:\n%s  of which wake:\n%s  of which complete:\n%s", park, wake, completeWoken)

	// One transaction per transition: submit and complete; park, outbox
	// flag cleared and complete, the start riding in the transaction of the
	// release that hands it the slot.
	require.Equal(t, 2, out.direct["DynamoDB.TransactWriteItems"].Calls)
	require.Equal(t, 3, out.parked["DynamoDB.TransactWriteItems"].Calls)
	require.Zero(t, wake["DynamoDB.TransactWriteItems"].Calls)
	require.Positive(t, wake["DynamoDB.TransactWriteItems"].ModelWriteUnits)
	require.Equal(t, 1, out.parked["SQS.SendMessage"].Calls)
	require.Equal(t, 1, out.parked["SQS.ReceiveMessage"].Calls)
	require.Equal(t, 1, out.parked["SQS.DeleteMessage"].Calls)
	require.Zero(t, out.direct["SQS.SendMessage"].Calls)
	require.Positive(t, out.direct.Total().ModelWriteUnits)
	return out
}

// TestRequestsPerLifecycle measures an unsharded pool's lifecycles: 4 and
// 10 requests (releases decide on the pool as recently read, the woken
// task is started from its message's copy, and the hand-off's follow-up
// dispatch reads the pool once), and every start and release writes the
// pool item.
func TestRequestsPerLifecycle(t *testing.T) {
	t.Parallel()
	c := measureLifecycles(t, poolCfg("gpu", 1, 10))
	require.Equal(t, 4, c.direct.Total().Calls)
	require.Equal(t, 10, c.parked.Total().Calls)
	require.Equal(t, map[string]int{"pool": 2}, c.directTouches)
}

// TestRequestsPerLifecycleSharded measures a pool of 3 slot shards: the
// same requests (a BatchGetItem of the pool and its shards where the
// unsharded pool takes a GetItem), and a lifecycle that starts at once
// writes one shard item twice and the pool item not at all. Parking with
// nothing parked before, and waking the last parked task, also write every
// shard's hasParked flag.
func TestRequestsPerLifecycleSharded(t *testing.T) {
	t.Parallel()
	const shards = 3
	cfg := poolCfg("hot", shards, 10)
	cfg.SlotShards = shards
	un := measureLifecycles(t, poolCfg("gpu", 1, 10))
	sh := measureLifecycles(t, cfg)

	require.Equal(t, un.direct.Total().Calls, sh.direct.Total().Calls)
	require.Equal(t, un.parked.Total().Calls, sh.parked.Total().Calls)
	require.Equal(t, un.direct["DynamoDB.TransactWriteItems"].ModelWriteUnits, sh.direct["DynamoDB.TransactWriteItems"].ModelWriteUnits)
	require.Zero(t, sh.direct["DynamoDB.GetItem"].Calls-un.direct["DynamoDB.GetItem"].Calls+sh.direct["DynamoDB.BatchGetItem"].Calls-un.direct["DynamoDB.BatchGetItem"].Calls,
		"pool reads move from GetItem to BatchGetItem, one for one")

	require.Zero(t, sh.directTouches["pool"], "a lifecycle that starts at once does not touch the pool item")
	one := 0
	for k, n := range sh.directTouches {
		if strings.HasPrefix(k, "shard") {
			require.Equal(t, 2, n, "start and release on the same shard")
			one++
		}
	}
	require.Equal(t, 1, one)
	// Parked: the park and the hand-off write the pool item (parked) and,
	// as parked goes from 0 and back to 0, every shard's flag.
	require.Equal(t, 2, sh.parkedTouches["pool"])
	for i := range shards {
		require.GreaterOrEqual(t, sh.parkedTouches[fmt.Sprintf("shard%d", i)], 2)
	}
	t.Logf("extra write units of the flags, parked lifecycle: %.0f",
		sh.parked.Total().ModelWriteUnits-un.parked.Total().ModelWriteUnits)
}

// itemTouches counts, per pool item ("pool") and slot shard item
// ("shard<i>"), the items of TransactWriteItems calls that name it.
type itemTouches struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *itemTouches) register(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("test.itemTouches",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				if tw, ok := in.Parameters.(*dynamodb.TransactWriteItemsInput); ok && err == nil {
					c.count(tw)
				}
				return out, md, err
			}), middleware.After)
	})
}

func (c *itemTouches) count(tw *dynamodb.TransactWriteItemsInput) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	for _, it := range tw.TransactItems {
		var key map[string]types.AttributeValue
		switch {
		case it.Put != nil:
			key = it.Put.Item
		case it.Update != nil:
			key = it.Update.Key
		case it.Delete != nil:
			key = it.Delete.Key
		case it.ConditionCheck != nil:
			key = it.ConditionCheck.Key
		}
		pk, _ := key["pk"].(*types.AttributeValueMemberS)
		sk, _ := key["sk"].(*types.AttributeValueMemberS)
		if pk == nil || sk == nil {
			continue
		}
		switch sk.Value {
		case "POOL":
			c.m["pool"]++
		case "SHARD":
			c.m["shard"+pk.Value[strings.LastIndexByte(pk.Value, '#')+1:]]++
		}
	}
}

func (c *itemTouches) snapshot() touchCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := touchCounts{}
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

type touchCounts map[string]int

func (a touchCounts) sub(b touchCounts) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func addTouches(ms ...map[string]int) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

func merge(cs ...awsstore.Counts) awsstore.Counts {
	out := awsstore.Counts{}
	for _, c := range cs {
		for k, o := range c {
			m := out[k]
			m.Calls += o.Calls
			m.Attempts += o.Attempts
			m.Errors += o.Errors
			m.ReadUnits += o.ReadUnits
			m.WriteUnits += o.WriteUnits
			m.ModelWriteUnits += o.ModelWriteUnits
			out[k] = m
		}
	}
	return out
}

func line(o awsstore.OpCount) string {
	return awsstore.Counts{"all": o}.String()
}
