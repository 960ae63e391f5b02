package aws

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// holder is one process's worker side: told of every start its scheduler
// makes, it holds the task briefly and completes it, recording the hold by
// its own clock, inside the scheduler's (after the start committed, before
// the completion is sent).
type holder struct {
	proc    int
	started chan core.Task
}

func (h *holder) Started(t *core.Task, _ time.Duration) { h.started <- *t }
func (h *holder) Ended(*core.Task)                      {}

type hold struct {
	task       string
	proc       int
	start, end time.Time
}

// TestConcurrentDispatchers runs four schedulers, each with its own store
// (separate processes) on one table and queue, all dispatching the same
// pool in a loop with no inline wake-ups, while their workers complete what
// they start. The first tasks fill the pool at submission and are held
// until every task is submitted, so that the rest park and are started by
// the racing dispatchers. The workers' own records must never show more holds at once
// than the capacity, every task starts once and ends succeeded with one
// outcome, and more than one process did starts.
func TestConcurrentDispatchers(t *testing.T) {
	t.Parallel()
	const (
		procs    = 4
		capacity = 3
		tasks    = 60
	)
	// Long leases and timeout: the package's other tests share moto, and
	// the first tasks are held until every task is submitted.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	ddb, sq := clean()
	n := uniq()
	opts := awsstore.Options{DynamoDB: ddb, SQS: sq, Table: "pl-" + n, QueuePrefix: "pl" + n + "-", CreateQueues: true, Visibility: 5 * time.Second}
	var (
		scheds  []*core.Scheduler
		holders []*holder
	)
	noWake := func(context.Context, string, time.Time) {}
	for i := range procs {
		st, err := awsstore.New(ctx, opts)
		require.NoError(t, err)
		if i == 0 {
			require.NoError(t, st.CreateResources(ctx))
		}
		h := &holder{proc: i, started: make(chan core.Task, tasks)}
		s, err := core.New(core.Config{Backend: st, Wake: noWake, Observer: h})
		require.NoError(t, err)
		if i == 0 {
			require.NoError(t, s.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: capacity, MaxParked: tasks, DefaultMaxWait: 10 * time.Minute, RunTimeout: 10 * time.Minute}))
		}
		scheds = append(scheds, s)
		holders = append(holders, h)
	}

	var (
		mu    sync.Mutex
		holds []hold
		errs  []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	done := make(chan struct{})
	release := make(chan struct{}) // closed once every task is submitted
	var completed sync.WaitGroup
	completed.Add(tasks)
	go func() { completed.Wait(); close(done) }()

	var wg sync.WaitGroup
	for i, h := range holders {
		wg.Go(func() { // the process's worker
			for {
				select {
				case <-done:
					return
				case tk := <-h.started:
					wg.Go(func() {
						start := time.Now()
						<-release
						time.Sleep(100 * time.Millisecond) // the work
						end := time.Now()
						_, err := scheds[i].Complete(ctx, core.CompleteRequest{Tenant: tk.Tenant, TaskID: tk.ID, Lease: tk.Lease, Status: core.StateSucceeded})
						if err != nil {
							fail(err)
						}
						mu.Lock()
						holds = append(holds, hold{task: tk.ID, proc: i, start: start, end: end})
						mu.Unlock()
						completed.Done()
					})
				}
			}
		})
		wg.Go(func() { // the process's dispatcher
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				if _, err := scheds[i].Dispatch(ctx, "p"); err != nil && !errors.Is(err, core.ErrNoCapacity) && ctx.Err() == nil {
					fail(err)
				}
				select {
				case <-done:
					return
				case <-tick.C:
				}
			}
		})
	}

	tenants := []string{"acme", "globex", "initech"}
	ids := make([]string, 0, tasks)
	for k := range tasks {
		res, err := scheds[k%procs].Submit(ctx, core.SubmitRequest{Tenant: tenants[k%len(tenants)], Pool: "p"})
		require.NoError(t, err)
		ids = append(ids, res.Task.ID)
	}
	close(release)
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("not every task completed within the timeout")
	}
	wg.Wait()
	require.Empty(t, errs)

	// The workers' own holds: never more at once than the capacity.
	ivs := make([]hold, len(holds))
	copy(ivs, holds)
	require.LessOrEqual(t, peakHolds(ivs), capacity, "more tasks held a slot at once than the capacity")
	perTask := map[string]int{}
	perProc := map[int]int{}
	for _, h := range ivs {
		perTask[h.task]++
		perProc[h.proc]++
	}
	require.Len(t, perTask, tasks)
	for id, c := range perTask {
		require.Equal(t, 1, c, "task %s started %d times", id, c)
	}
	require.GreaterOrEqual(t, len(perProc), 2, "starts by process: %v", perProc)
	require.Equal(t, capacity, peakHolds(ivs), "the pool ran full: the dispatchers raced for its slots")
	t.Logf("starts by process %v, peak holds %d of %d", perProc, peakHolds(ivs), capacity)

	st := scheds[0].Backend()
	for _, id := range ids {
		tk, err := st.Task(ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, tk.State)
	}
	outcomes := map[string]int{}
	for _, tenant := range tenants {
		ms, err := st.Messages(ctx, tenant, tenant, 0, core.MaxPageLimit)
		require.NoError(t, err)
		for _, m := range ms {
			if m.Type != core.MessageStarted {
				outcomes[m.TaskID]++
			}
		}
	}
	for _, id := range ids {
		require.Equal(t, 1, outcomes[id], "task %s: outcome messages", id)
	}
	p, err := st.Pool(ctx, "p")
	require.NoError(t, err)
	require.Zero(t, p.Running)
	require.Zero(t, p.Parked)
}

// peakHolds is the most holds that overlap at once; one ending as another
// starts does not overlap.
func peakHolds(hs []hold) int {
	peak := 0
	for _, a := range hs {
		n := 0
		for _, b := range hs {
			if b.start.Compare(a.start) <= 0 && b.end.After(a.start) {
				n++
			}
		}
		peak = max(peak, n)
	}
	return peak
}
