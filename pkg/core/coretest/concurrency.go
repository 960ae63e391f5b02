package coretest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// interval is one task's hold of a slot as its worker saw it: from when the
// worker learned of the start to just before it released the slot, read
// from the monotonic clock, so it lies within the scheduler's own hold.
type interval struct {
	task       string
	start, end time.Time
}

// maxOverlap returns the largest number of intervals that overlap at once.
// Touching intervals (one ends as another starts) do not overlap.
func maxOverlap(ivs []interval) int {
	type edge struct {
		at    time.Time
		delta int
	}
	edges := make([]edge, 0, 2*len(ivs))
	for _, iv := range ivs {
		edges = append(edges, edge{iv.start, 1}, edge{iv.end, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // ends first
	})
	n, peak := 0, 0
	for _, e := range edges {
		n += e.delta
		peak = max(peak, n)
	}
	return peak
}

func exerciseConcurrency(t *testing.T, newBackend NewBackend) {
	t.Run("CapacityUnderContention", func(t *testing.T) {
		t.Parallel()
		const (
			capacity  = 3
			workers   = 8
			perWorker = 25
		)
		tb := setup(t, newBackend, core.PoolConfig{Name: "p", Capacity: capacity, MaxParked: workers * perWorker, DefaultMaxWait: 24 * time.Hour, RunTimeout: time.Hour})
		var (
			mu        sync.Mutex
			intervals []interval
			ids       []string
			wg        sync.WaitGroup
		)
		errs := make(chan error, workers+2)
		// Extra dispatchers and a sweeper race the workers' own wake-ups.
		stop := make(chan struct{})
		var side sync.WaitGroup
		for i := range 2 {
			side.Add(1)
			go func() {
				defer side.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					var err error
					if i == 0 {
						_, err = tb.s.Sweep(tb.ctx)
					} else {
						_, err = tb.s.Dispatch(tb.ctx, "p")
					}
					if err != nil {
						errs <- fmt.Errorf("side %d: %w", i, err)
						return
					}
					runtime.Gosched()
				}
			}()
		}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := concurrencyWorker(tb.ctx, tb.s, w, perWorker, func(iv interval) {
					mu.Lock()
					intervals = append(intervals, iv)
					mu.Unlock()
				}, func(id string) {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
				}
			}()
		}
		wg.Wait()
		close(stop)
		side.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		require.False(t, t.Failed())

		require.NotEmpty(t, intervals)
		require.LessOrEqual(t, maxOverlap(intervals), capacity, "more tasks held a slot at once than the capacity")
		t.Logf("%d tasks, %d held a slot, peak overlap %d of %d", len(ids), len(intervals), maxOverlap(intervals), capacity)

		// At quiescence, the pool item's counters equal the task items.
		running, parked := 0, 0
		for _, id := range ids {
			task, err := tb.b.Task(tb.ctx, id)
			require.NoError(t, err)
			switch task.State {
			case core.StateRunning:
				running++
			case core.StateParked:
				parked++
			}
			outcomes := 0
			for _, m := range allMessages(t, tb.ctx, tb.b, task.Tenant, task.Recipient) {
				if m.TaskID == id && m.Type != core.MessageStarted {
					outcomes++
					require.Equal(t, core.MessageType(task.State), m.Type)
				}
			}
			require.Equal(t, 1, outcomes, "outcome messages of %s (%s)", id, task.State)
		}
		p, err := tb.b.Pool(tb.ctx, "p")
		require.NoError(t, err)
		require.Equal(t, running, p.Running)
		require.Equal(t, parked, p.Parked)
		require.Zero(t, running)
		require.Zero(t, parked)
	})

	t.Run("SameKeyConcurrently", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 50))
		const n = 8
		results := make(chan core.SubmitResult, n*5)
		errs := make(chan error, n*5)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 5 {
					res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Key: fmt.Sprintf("key-%d", k), Payload: []byte(`{"k":1}`)})
					if err != nil {
						errs <- fmt.Errorf("submitter %d key %d: %w", i, k, err)
						continue
					}
					results <- res
				}
			}()
		}
		wg.Wait()
		close(results)
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		byKey := map[string]map[string]bool{}
		fresh := map[string]int{}
		for res := range results {
			if byKey[res.Task.Key] == nil {
				byKey[res.Task.Key] = map[string]bool{}
			}
			byKey[res.Task.Key][res.Task.ID] = true
			if !res.Replayed {
				fresh[res.Task.Key]++
			}
		}
		require.Len(t, byKey, 5)
		for key, ids := range byKey {
			require.Len(t, ids, 1, "key %s made several tasks", key)
			require.Equal(t, 1, fresh[key], "key %s: submissions not replayed", key)
		}
		st := tb.stats(t, "p")
		require.Equal(t, 1, st.Running)
		require.Equal(t, 4, st.Parked)
	})

	t.Run("RacingEnds", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 2, 50))
		var tasks []core.Task
		for range 20 {
			tasks = append(tasks, tb.submit(t, "acme", "p"))
		}
		var wg sync.WaitGroup
		for _, task := range tasks {
			// The holder completes, the tenant cancels, and, for tasks
			// still parked, a dispatcher may start them meanwhile.
			wg.Add(3)
			go func() {
				defer wg.Done()
				lease := task.Lease
				if lease == "" {
					lease = "none"
				}
				_, err := tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "acme", TaskID: task.ID, Lease: lease, Status: core.StateSucceeded})
				if err != nil && !errorsIs(err, core.ErrLeaseLost) {
					t.Errorf("complete %s: %v", task.ID, err)
				}
			}()
			go func() {
				defer wg.Done()
				_, err := tb.s.Cancel(tb.ctx, "acme", task.ID)
				if err != nil && !errorsIs(err, core.ErrInvalidState) {
					t.Errorf("cancel %s: %v", task.ID, err)
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := tb.s.Dispatch(tb.ctx, "p"); err != nil {
					t.Errorf("dispatch: %v", err)
				}
			}()
		}
		wg.Wait()
		for _, task := range tasks {
			got := tb.task(t, "acme", task.ID)
			if got.State == core.StateRunning {
				tb.complete(t, got, core.StateSucceeded)
				got = tb.task(t, "acme", task.ID)
			}
			require.True(t, got.State == core.StateSucceeded || got.State == core.StateCancelled, "%s ended %s", task.ID, got.State)
			var outcomes []core.MessageType
			for _, m := range tb.messagesOf(t, "acme", "acme", task.ID) {
				if m.Type != core.MessageStarted {
					outcomes = append(outcomes, m.Type)
				}
			}
			require.Equal(t, []core.MessageType{core.MessageType(got.State)}, outcomes)
			tr := tb.transitions(t, "acme", task.ID)
			require.Equal(t, got.State, tr[len(tr)-1].To)
		}
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, MaxParked: 50}, tb.stats(t, "p"))
	})
}

// concurrencyWorker submits n tasks one after another, waits for each to
// start (at once, or by a wake-up it learns of from its mailbox), holds the
// slot briefly, and completes or cancels it; some tasks it cancels while
// they are parked.
func concurrencyWorker(ctx context.Context, s *core.Scheduler, w, n int, hold func(interval), submitted func(string)) error {
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	tenant := []string{"acme", "globex"}[w%2]
	recipient := fmt.Sprintf("worker-%d", w)
	var after core.Cursor
	for i := range n {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: "p", Recipient: recipient})
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		task := res.Task
		submitted(task.ID)
		if task.State == core.StateParked && rng.IntN(8) == 0 {
			got, err := s.Cancel(ctx, tenant, task.ID)
			if err != nil {
				return fmt.Errorf("cancel parked: %w", err)
			}
			if got.State != core.StateCancelled {
				return fmt.Errorf("cancel of %s gave %s", task.ID, got.State)
			}
			// It may have started before the cancel: then it held a slot
			// until the cancel, which no interval of this worker covers.
			continue
		}
		lease := task.Lease
		start := time.Now()
		if task.State == core.StateParked {
			lease, after, err = awaitStart(ctx, s, tenant, recipient, task.ID, after)
			if err != nil {
				return fmt.Errorf("task %d: %w", i, err)
			}
			start = time.Now()
		}
		// Hold the slot for a moment of work.
		work := time.Duration(rng.IntN(300)) * time.Microsecond
		for time.Since(start) < work {
			runtime.Gosched()
		}
		end := time.Now()
		hold(interval{task: task.ID, start: start, end: end})
		if rng.IntN(5) == 0 {
			got, err := s.Cancel(ctx, tenant, task.ID)
			if err != nil {
				return fmt.Errorf("cancel running: %w", err)
			}
			if got.State != core.StateCancelled {
				return fmt.Errorf("cancel of %s gave %s", task.ID, got.State)
			}
			continue
		}
		if _, err := s.Complete(ctx, core.CompleteRequest{Tenant: tenant, TaskID: task.ID, Lease: lease, Status: core.StateSucceeded}); err != nil {
			return fmt.Errorf("complete: %w", err)
		}
	}
	return nil
}

// wakeGuard bounds the wait for a parked task's start. It catches a task
// that never starts (a lost wake-up), not a slow one: on moto under a
// loaded machine a start can take tens of seconds, so the bound is far
// above any start the test expects.
const wakeGuard = 3 * time.Minute

// errNoWake reports a parked task that was never started although slots
// freed: a lost wake-up.
var errNoWake = fmt.Errorf("parked task not started within %s: lost wake-up", wakeGuard)

// awaitStart long-polls the mailbox until the started message of id lands.
func awaitStart(ctx context.Context, s *core.Scheduler, tenant, recipient, id string, after core.Cursor) (string, core.Cursor, error) {
	deadline := time.Now().Add(wakeGuard)
	for time.Now().Before(deadline) {
		page, err := s.Mailbox(ctx, core.MailboxRequest{Tenant: tenant, Recipient: recipient, After: after, Wait: time.Second})
		if err != nil {
			return "", after, fmt.Errorf("mailbox: %w", err)
		}
		for _, m := range page.Messages {
			after = m.Cursor
			if m.TaskID == id && m.Type == core.MessageStarted {
				return m.Lease, after, nil
			}
		}
	}
	return "", after, fmt.Errorf("%s: %w", id, errNoWake)
}
