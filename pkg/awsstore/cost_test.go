package awsstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestRequestsPerLifecycle counts, with the SDK middleware, the AWS requests
// and write units of the two task lifecycles in steady state (queue URL and
// mailbox sequence known): submit→start→complete, and
// submit→park→wake→complete. moto reports no consumed capacity for
// transactions, so write units are also modeled from the requests.
func TestRequestsPerLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	clock := core.NewStubClock(t0)
	s, err := core.New(core.Config{Backend: b.store, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, poolCfg("gpu", 1, 10)))

	submit := func() core.Task {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu", Payload: []byte(`{"job":42}`)})
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
	// Warm up: one of each lifecycle, so that caches are filled.
	w1 := submit()
	w2 := submit()
	complete(w1)
	complete(lease(w2.ID))

	measure := func(f func()) awsstore.Counts {
		before := b.counter.Snapshot()
		f()
		return b.counter.Snapshot().Sub(before)
	}

	// submit→start→complete.
	var direct core.Task
	submitRun := measure(func() { direct = submit() })
	require.Equal(t, core.StateRunning, direct.State)
	completeIdle := measure(func() { complete(direct) })

	// submit→park→wake→complete: a holds the slot, b parks, a's completion
	// wakes b; the wake's share is a's completion minus an idle completion.
	a := submit()
	var parked core.Task
	park := measure(func() { parked = submit() })
	require.Equal(t, core.StateParked, parked.State)
	completeWake := measure(func() { complete(a) })
	woken := lease(parked.ID)
	completeWoken := measure(func() { complete(woken) })
	wake := completeWake.Sub(completeIdle)

	l1 := merge(submitRun, completeIdle)
	l2 := merge(park, wake, completeWoken)
	t.Logf("submit→start→complete:\n%s  total %s", l1, line(l1.Total()))
	t.Logf("submit→park→wake→complete:\n%s  total %s", l2, line(l2.Total()))
	t.Logf("  of which park:\n%s  of which wake:\n%s  of which complete:\n%s", park, wake, completeWoken)

	// One transaction per transition: submit and complete; park, outbox
	// flag cleared and complete, the start riding in the transaction of the
	// release that hands it the slot.
	require.Equal(t, 2, l1["DynamoDB.TransactWriteItems"].Calls)
	require.Equal(t, 3, l2["DynamoDB.TransactWriteItems"].Calls)
	require.Zero(t, wake["DynamoDB.TransactWriteItems"].Calls)
	require.Positive(t, wake["DynamoDB.TransactWriteItems"].ModelWriteUnits)
	require.Equal(t, 1, l2["SQS.SendMessage"].Calls)
	require.Equal(t, 1, l2["SQS.ReceiveMessage"].Calls)
	require.Equal(t, 1, l2["SQS.DeleteMessage"].Calls)
	require.Zero(t, l1["SQS.SendMessage"].Calls)
	require.Positive(t, l1.Total().ModelWriteUnits)
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
