package coretest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// exercisePortRaces checks that the port's conditions hold when writers
// race: each condition admits exactly as many writers as it should.
func exercisePortRaces(t *testing.T, newBackend NewBackend) {
	t.Run("ConcurrentConditions", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		pb.putPool(t, "p", 3, 2)
		const n = 12
		run := func(f func(i int) error) (won int, lost []error) {
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := f(i)
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						won++
					} else {
						lost = append(lost, err)
					}
				}()
			}
			wg.Wait()
			return won, lost
		}
		requireAll := func(errs []error, target error) {
			for _, err := range errs {
				require.ErrorIs(t, err, target)
			}
		}

		// Slots: three of twelve.
		won, lost := run(func(i int) error {
			return pb.b.Commit(pb.ctx, &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true,
				Tasks: []core.TaskWrite{{Task: testTask(fmt.Sprintf("run-%d", i), "acme", "p", core.StateRunning, T0)}}})
		})
		require.Equal(t, 3, won)
		requireAll(lost, core.ErrNoCapacity)
		// Parked places: two of twelve.
		won, lost = run(func(i int) error {
			return pb.b.Commit(pb.ctx, &core.Txn{Pool: "p", ParkedDelta: 1, NeedParkRoom: true,
				Tasks: []core.TaskWrite{{Task: testTask(fmt.Sprintf("park-%d", i), "acme", "p", core.StateParked, T0)}}})
		})
		require.Equal(t, 2, won)
		requireAll(lost, core.ErrPoolFull)
		p := pb.pool(t, "p")
		require.Equal(t, 3, p.Running)
		require.Equal(t, 2, p.Parked)

		// One task version: one writer of twelve.
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: testTask("cas", "acme", "p", core.StateParked, T0)}}}))
		won, lost = run(func(i int) error {
			next := testTask("cas", "acme", "p", core.StateCancelled, T0)
			return pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: next, Expect: 1}},
				Messages: []core.Message{{Tenant: "acme", Recipient: "cas", TaskID: "cas", Type: "cancelled", At: T0}}})
		})
		require.Equal(t, 1, won)
		requireAll(lost, core.ErrConflict)
		require.Len(t, allMessages(t, pb.ctx, pb.b, "acme", "cas"), 1, "the losers wrote no message")
		// One key: one writer of twelve.
		won, lost = run(func(i int) error {
			return pb.b.Commit(pb.ctx, &core.Txn{Key: &core.KeyRecord{Tenant: "acme", Key: "k", TaskID: fmt.Sprint(i)}})
		})
		require.Equal(t, 1, won)
		requireAll(lost, core.ErrKeyExists)
	})

	t.Run("ConcurrentMailboxCursors", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		const writers, each = 6, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					err := pb.b.Commit(pb.ctx, &core.Txn{Messages: []core.Message{{Tenant: "acme", Recipient: "box", TaskID: fmt.Sprintf("%d-%02d", w, i), Type: "succeeded", At: T0}}})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		require.NoError(t, errors.Join(func() []error {
			var out []error
			for err := range errs {
				out = append(out, err)
			}
			return out
		}()...))
		msgs := allMessages(t, pb.ctx, pb.b, "acme", "box")
		require.Len(t, msgs, writers*each)
		last := map[byte]string{}
		seen := map[core.Cursor]bool{}
		for i, m := range msgs {
			require.False(t, seen[m.Cursor], "cursor %v twice", m.Cursor)
			seen[m.Cursor] = true
			if i > 0 {
				require.Greater(t, m.Cursor, msgs[i-1].Cursor)
			}
			// Each writer's messages appear in its commit order.
			w := m.TaskID[0]
			require.Greater(t, m.TaskID, last[w])
			last[w] = m.TaskID
		}
	})
}
