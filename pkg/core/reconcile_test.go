package core_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// lossyQueue is a memory store whose queue loses what the test says and
// that reports the pools the test marks as short: a QueueReconciler.
type lossyQueue struct {
	*memstore.Store
	mu       sync.Mutex
	lose     bool            // sends are lost (the message never lands)
	fail     bool            // sends fail
	short    map[string]bool // pools whose queue looks short
	checked  []string        // pools whose queue was counted
	resends  []core.Parked   // sends with Resend set
	nonTerms int             // NonTerminal calls
}

func (q *lossyQueue) Send(ctx context.Context, pool string, p core.Parked) error {
	q.mu.Lock()
	lose, fail := q.lose, q.fail
	if !p.Resend.IsZero() {
		q.resends = append(q.resends, p)
	}
	q.mu.Unlock()
	switch {
	case fail:
		return errors.New("send failed")
	case lose:
		return nil
	}
	return q.Store.Send(ctx, pool, p)
}

func (q *lossyQueue) QueueShort(_ context.Context, pool string, parked int) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.checked = append(q.checked, pool)
	return q.short[pool], nil
}

// NonTerminal pages through the memory store's due index, 2 ids a page, the
// cursor being an offset into the ids sorted (the index orders tasks due
// at the same time in no fixed order, which would make pages overlap).
func (q *lossyQueue) NonTerminal(ctx context.Context, after string, limit int) ([]string, string, error) {
	q.mu.Lock()
	q.nonTerms++
	q.mu.Unlock()
	ids, err := q.Store.Due(ctx, time.Unix(1<<40, 0), 1<<20)
	if err != nil {
		return nil, "", err
	}
	slices.Sort(ids)
	from := 0
	if after != "" {
		if from, err = strconv.Atoi(after); err != nil {
			return nil, "", err
		}
	}
	to := min(len(ids), from+min(limit, 2))
	next := ""
	if to < len(ids) {
		next = strconv.Itoa(to)
	}
	return ids[from:to], next, nil
}

var _ core.QueueReconciler = (*lossyQueue)(nil)

// TestReconcileRule: the sweep's reconcile counts the queues of pools with
// parked tasks, and in those that look short re-sends, marked as re-sends,
// the parked tasks that have waited ReconcileEvery and are not flagged
// Unsent; never running ones, never those of a pool whose queue looks
// full; and at most once per ReconcileEvery.
func TestReconcileRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := core.NewStubClock(t0)
	q := &lossyQueue{Store: memstore.New(memstore.Options{Clock: clock}), short: map[string]bool{"lost": true}}
	s, err := core.New(core.Config{Backend: q, Clock: clock, ReconcileEvery: time.Minute})
	require.NoError(t, err)
	for _, p := range []string{"lost", "fine", "idle"} {
		require.NoError(t, s.PutPool(ctx, core.PoolConfig{Name: p, Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: time.Hour}))
	}
	submit := func(pool string) core.Task {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: pool})
		require.NoError(t, err)
		return res.Task
	}
	running := submit("lost")
	require.Equal(t, core.StateRunning, running.State)
	q.lose = true
	old := []core.Task{submit("lost"), submit("lost"), submit("lost")}
	submit("fine")
	submit("fine") // parked in a pool whose queue looks full
	submit("idle") // runs: nothing parked there
	q.lose, q.fail = false, true
	unsent := submit("lost")
	require.True(t, unsent.Unsent)
	q.fail = false

	clock.Advance(time.Minute)
	q.lose = true // every send into "lost" is lost from now on
	young := submit("lost")
	ids := func() []string {
		q.mu.Lock()
		defer q.mu.Unlock()
		var ids []string
		for _, p := range q.resends {
			require.True(t, p.Resend.Equal(clock.Now()), "marked as a re-send")
			ids = append(ids, p.TaskID)
		}
		q.resends, q.checked = nil, nil
		return ids
	}
	// The outbox re-sends the unsent task first; then the reconcile.
	st, err := s.Sweep(ctx)
	require.NoError(t, err)
	want := []string{old[0].ID, old[1].ID, old[2].ID, unsent.ID}
	require.ElementsMatch(t, want, ids(), "the parked tasks of the short pool that waited a minute")
	require.Equal(t, len(want), st.Reconciled)

	clock.Advance(30 * time.Second)
	st, err = s.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Reconciled, "at most once per ReconcileEvery")
	require.Empty(t, q.checked)

	// The re-sends were lost too; the running task ends with nothing to
	// hand its slot to.
	_, err = s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: running.ID, Lease: running.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)
	q.lose = false
	clock.Advance(30 * time.Second)
	st, err = s.Sweep(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"lost", "fine"}, q.checked, "the pools with parked tasks are counted")
	resent := ids()
	require.ElementsMatch(t, append(want, young.ID), resent, "now also the young one")
	require.NotContains(t, resent, running.ID)
	require.Equal(t, 5, st.Reconciled)
	require.Equal(t, 1, st.Started, "the re-sent messages start the pool's next task")
	p, err := s.Pool(ctx, "lost")
	require.NoError(t, err)
	require.Equal(t, 1, p.Running)
	require.Equal(t, 4, p.Parked)
}
