package awsstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// hooked runs a hook once after a Receive and once before a Release goes
// through, to put another actor at an exact point of a dispatch.
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

func (h *hooked) Receive(ctx context.Context, pool string, n int) ([]core.Delivery, error) {
	ds, err := h.Backend.Receive(ctx, pool, n)
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

// TestNoLostWakeupUnderFIFOGroups is the release-races-dispatch case on
// FIFO message groups: a dispatcher holds acme's parked message when another
// dispatcher starts globex's into the last slot; the first one's start
// fails for capacity; before it hands its message back, the globex task
// completes, and that completion's wake-up finds nothing to receive (acme's
// group is held). Once the message is back, the task must still start.
func TestNoLostWakeupUnderFIFOGroups(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	clock := core.NewStubClock(t0)
	h := &hooked{Backend: b.store}
	noWake := func(context.Context, string, time.Time) {}
	quiet, err := core.New(core.Config{Backend: h, Clock: clock, Wake: noWake})
	require.NoError(t, err)
	other, err := core.New(core.Config{Backend: b.store, Clock: clock, Wake: noWake})
	require.NoError(t, err)
	waking, err := core.New(core.Config{Backend: b.store, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, quiet.PutPool(ctx, poolCfg("p", 1, 5)))

	sub := func(tenant string) core.Task {
		res, err := quiet.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: "p"})
		require.NoError(t, err)
		return res.Task
	}
	a := sub("acme")
	acme := sub("acme")
	globex := sub("globex")
	require.Equal(t, core.StateParked, globex.State)
	_, err = quiet.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)

	var wokeNone int
	h.afterReceive = func() {
		n, err := other.Dispatch(ctx, "p")
		require.NoError(t, err)
		require.Equal(t, 1, n, "the other dispatcher starts globex's task")
	}
	h.onRelease = func() {
		g, err := b.store.Task(ctx, globex.ID)
		require.NoError(t, err)
		require.Equal(t, core.StateRunning, g.State)
		_, err = waking.Complete(ctx, core.CompleteRequest{Tenant: "globex", TaskID: g.ID, Lease: g.Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
		tk, err := b.store.Task(ctx, acme.ID)
		require.NoError(t, err)
		if tk.State == core.StateParked {
			wokeNone++ // the completion's wake-up found acme's group held
		}
	}
	_, err = quiet.Dispatch(ctx, "p")
	require.NoError(t, err)
	require.Nil(t, h.take(&h.onRelease), "the race did not happen")
	require.Equal(t, 1, wokeNone, "the completion's wake-up could not start the held task")

	tk, err := b.store.Task(ctx, acme.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, tk.State, "the dispatcher that handed the message back started it")
	p, err := b.store.Pool(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 1, p.Running)
	require.Equal(t, 0, p.Parked)
}
