package coretest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// offsetClock is the wall clock moved by a fixed offset: the clock of a
// process whose clock is a little ahead of or behind the others'.
type offsetClock time.Duration

func (c offsetClock) Now() time.Time { return time.Now().UTC().Add(time.Duration(c)) }

// slowCommits delays every commit by up to max after core decided it (and
// read its clock): the commit latency that lets two transitions of one pool
// commit in the other order than their stamps.
type slowCommits struct {
	core.Backend
	max time.Duration
	mu  sync.Mutex
	rng *rand.Rand
}

func (b *slowCommits) Commit(ctx context.Context, txn *core.Txn) error {
	b.mu.Lock()
	d := time.Duration(b.rng.Int64N(int64(b.max)))
	b.mu.Unlock()
	time.Sleep(d)
	return b.Backend.Commit(ctx, txn)
}

// exerciseAuditReplay checks that a pool's audit trail replays to the
// truth: replayed in (At, Seq) order, a pool's events never show more tasks
// running than its capacity, and each task's events follow one another
// (each leaves the state the next one starts from). Workers submit,
// complete and cancel on a small pool through several schedulers over one
// backend, with clocks a few milliseconds apart and commits that land a
// moment after they were decided, while dispatchers and a sweeper race
// them. The verdict is the observer's alone, which reads nothing but the
// audit trail.
func exerciseAuditReplay(t *testing.T, newBackend NewBackend) {
	t.Run("AuditReplaysToTheTruth", func(t *testing.T) {
		t.Parallel()
		const (
			capacity  = 2
			workers   = 6
			perWorker = 15
		)
		ctx := t.Context()
		b := newBackend(t, core.SystemClock{})
		slow := &slowCommits{Backend: b, max: 2 * time.Millisecond, rng: rand.New(rand.NewPCG(1, 2))}
		logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		var scheds []*core.Scheduler
		for _, off := range []time.Duration{0, -3 * time.Millisecond, 2 * time.Millisecond} {
			s, err := core.New(core.Config{Backend: slow, Clock: offsetClock(off), Logger: logger, MailboxPoll: 5 * time.Millisecond})
			require.NoError(t, err)
			scheds = append(scheds, s)
		}
		require.NoError(t, scheds[0].PutPool(ctx, core.PoolConfig{
			Name: "p", Capacity: capacity, MaxParked: workers * perWorker, DefaultMaxWait: 24 * time.Hour, RunTimeout: time.Hour,
		}))
		from := time.Now().UTC().Add(-time.Hour)

		errs := make(chan error, workers+2)
		stop := make(chan struct{})
		var side sync.WaitGroup
		for i := range 2 {
			side.Add(1)
			go func() {
				defer side.Done()
				s := scheds[(i+1)%len(scheds)]
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
					var err error
					if i == 0 {
						_, err = s.Sweep(ctx)
					} else {
						_, err = s.Dispatch(ctx, "p")
					}
					if err != nil {
						errs <- fmt.Errorf("side %d: %w", i, err)
						return
					}
				}
			}()
		}
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			ids []string
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := concurrencyWorker(ctx, scheds[w%len(scheds)], w, perWorker, func(interval) {}, func(id string) {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				})
				if err != nil {
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
		runtime.Gosched()

		// The observer: every event of the pool, of both tenants.
		to := time.Now().UTC().Add(time.Hour)
		var evs []core.Event
		for _, tenant := range []string{"acme", "globex"} {
			for _, e := range allEvents(t, ctx, b, core.AuditQuery{Tenant: tenant, From: from, To: to}) {
				if e.Pool == "p" {
					evs = append(evs, e)
				}
			}
		}
		peak, running, state := replayWithin(t, evs, capacity)
		require.Zero(t, running, "the replay ends with tasks running")
		require.Len(t, state, len(ids), "tasks in the audit trail")
		t.Logf("%d tasks, %d events replayed, peak %d running of %d", len(ids), len(evs), peak, capacity)

		// Each task's times are those of its events.
		for _, id := range ids {
			task, err := b.Task(ctx, id)
			require.NoError(t, err)
			require.True(t, task.State.Terminal(), "%s ended %s", id, task.State)
			for _, e := range evs {
				if e.TaskID != id {
					continue
				}
				if e.From == "" {
					require.True(t, task.SubmittedAt.Equal(e.At), "%s submitted at %s, its event at %s", id, task.SubmittedAt, e.At)
				}
				if e.To == core.StateRunning {
					require.True(t, task.StartedAt.Equal(e.At), "%s started at %s, its event at %s", id, task.StartedAt, e.At)
				}
				if e.To.Terminal() {
					require.True(t, task.EndedAt.Equal(e.At), "%s ended at %s, its event at %s", id, task.EndedAt, e.At)
				}
			}
		}
	})
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
