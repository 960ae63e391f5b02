package awsstore_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestConcurrentAdmissionHoldsCapacity races 32 goroutines, each taking and
// giving back slots of a capacity-10 pool with conditional commits through
// the serialized moto launcher. An observer independent of the store (the
// goroutines' own count of held slots) never sees more than 10, and neither
// does any read of the pool item; the counter ends at 0 with every take
// matched by a give-back. Without the launcher's serialization moto lets the
// counter pass the capacity (issue 3 measured running = 11).
func TestConcurrentAdmissionHoldsCapacity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	const capacity, workers, rounds = 10, 32, 6
	require.NoError(t, b.store.PutPool(ctx, poolCfg("hot", capacity, 0)))

	var held, peak, taken, refused atomic.Int64
	var poolPeak atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				id := fmt.Sprintf("w%d-r%d", w, r)
				tk := runningTask(id, "hot")
				err := b.store.Commit(ctx, &core.Txn{Pool: "hot", RunningDelta: 1, NeedSlot: true,
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
				n := held.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				p, err := b.store.Pool(ctx, "hot")
				if err != nil {
					errs <- err
					return
				}
				for q := poolPeak.Load(); int64(p.Running) > q && !poolPeak.CompareAndSwap(q, int64(p.Running)); q = poolPeak.Load() {
				}
				held.Add(-1)
				done := tk
				done.State = core.StateSucceeded
				if err := b.store.Commit(ctx, &core.Txn{Pool: "hot", RunningDelta: -1,
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
	p, err := b.store.Pool(ctx, "hot")
	require.NoError(t, err)
	t.Logf("taken %d, refused %d, peak held %d, peak pool.running %d", taken.Load(), refused.Load(), peak.Load(), poolPeak.Load())
	require.LessOrEqual(t, peak.Load(), int64(capacity))
	require.LessOrEqual(t, poolPeak.Load(), int64(capacity))
	require.Equal(t, 0, p.Running, "every slot given back")
	require.Equal(t, int64(workers*rounds), taken.Load()+refused.Load())
	require.Positive(t, refused.Load(), "32 workers on 10 slots must be refused at times, or the race was not run")
}
