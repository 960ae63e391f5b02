package coretest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// hooked wraps a backend and runs a hook once before a queue call goes
// through, to interleave another actor at an exact point of a dispatch.
type hooked struct {
	core.Backend
	mu                      sync.Mutex
	afterReceive, onRelease func()
}

func (h *hooked) take(f *func()) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := *f
	*f = nil
	return g
}

func (h *hooked) Receive(ctx context.Context, pool string, max int) ([]core.Delivery, error) {
	ds, err := h.Backend.Receive(ctx, pool, max)
	if f := h.take(&h.afterReceive); f != nil {
		f()
	}
	return ds, err
}

func (h *hooked) Release(ctx context.Context, pool, receipt string) error {
	if f := h.take(&h.onRelease); f != nil {
		f()
	}
	return h.Backend.Release(ctx, pool, receipt)
}

func exerciseRaces(t *testing.T, newBackend NewBackend) {
	// A dispatcher receives a parked task's message, but another dispatcher
	// takes the last slot first; the first dispatcher's start fails for
	// capacity. Before it releases the message, the slot frees again and
	// that release's wake-up finds the queue empty (the message is still
	// held). Once the message is back, someone must start it: the
	// dispatcher that released it.
	t.Run("NoLostWakeupWhenReleaseRacesDispatch", func(t *testing.T) {
		t.Parallel()
		clock := core.NewStubClock(T0)
		inner := newBackend(t, clock)
		h := &hooked{Backend: inner}
		ctx := t.Context()
		noWake := func(context.Context, string, time.Time) {}
		quiet, err := core.New(core.Config{Backend: h, Clock: clock, Wake: noWake})
		require.NoError(t, err)
		other, err := core.New(core.Config{Backend: inner, Clock: clock, Wake: noWake})
		require.NoError(t, err)
		waking, err := core.New(core.Config{Backend: inner, Clock: clock})
		require.NoError(t, err)
		require.NoError(t, quiet.PutPool(ctx, poolCfg("p", 1, 5)))

		// b and c belong to different tenants, so that a FIFO queue with a
		// message group per tenant hands them to two receivers at once.
		sub := func(tenant string) core.Task {
			res, err := quiet.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: "p"})
			require.NoError(t, err)
			return res.Task
		}
		a := sub("acme")
		b := sub("acme")
		c := sub("globex")
		require.Equal(t, core.StateParked, c.State)
		_, err = quiet.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
		// One slot free, b and c parked, no dispatch yet.

		h.afterReceive = func() {
			// The other dispatcher takes the slot for the next message.
			n, err := other.Dispatch(ctx, "p")
			require.NoError(t, err)
			require.Equal(t, 1, n)
		}
		h.onRelease = func() {
			// The task holding the slot completes; its wake-up runs now.
			for _, id := range []string{b.ID, c.ID} {
				task, err := inner.Task(ctx, id)
				require.NoError(t, err)
				if task.State == core.StateRunning {
					_, err := waking.Complete(ctx, core.CompleteRequest{Tenant: task.Tenant, TaskID: id, Lease: task.Lease, Status: core.StateSucceeded})
					require.NoError(t, err)
				}
			}
		}
		_, err = quiet.Dispatch(ctx, "p")
		require.NoError(t, err)
		require.Nil(t, h.take(&h.onRelease), "the race did not happen")

		st, err := quiet.Pool(ctx, "p")
		require.NoError(t, err)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, Parked: 0, MaxParked: 5}, st,
			"a slot is free and a task parked, and no one will start it before the next sweep")
	})
}
