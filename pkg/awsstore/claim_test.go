package awsstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestClaimWaitsOnTheQueue: a claim that waits for work in a pull pool
// with a free slot waits on the pool's SQS queue (a long poll), so that a
// task another process parks reaches it at once, without polling the pool
// item: here the claim's own poll interval is longer than its wait, and
// the submission comes through another store, as from another process.
func TestClaimWaitsOnTheQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	claimer, err := core.New(core.Config{Backend: b.store, MailboxPoll: time.Hour})
	require.NoError(t, err)
	require.NoError(t, claimer.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute, Executor: core.ExecutorPull}))
	other, err := awsstore.New(ctx, b.opts)
	require.NoError(t, err)
	submitter, err := core.New(core.Config{Backend: other})
	require.NoError(t, err)

	before := b.counter.Snapshot()["SQS.ReceiveMessage"].Attempts
	got := make(chan []core.Task, 1)
	errc := make(chan error, 1)
	go func() {
		tasks, err := claimer.Claim(ctx, core.ClaimRequest{Worker: core.Worker{Name: "w", Pools: []string{"p"}}, Pool: "p", Wait: core.MaxClaimWait})
		errc <- err
		got <- tasks
	}()
	// The claim is waiting on the queue once it sends its receive (an
	// attempt is counted as it is sent; a call, once answered).
	require.Eventually(t, func() bool {
		return b.counter.Snapshot()["SQS.ReceiveMessage"].Attempts > before
	}, time.Minute, 5*time.Millisecond)
	res, err := submitter.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
	require.NoError(t, err)
	require.Equal(t, core.StateParked, res.Task.State)
	require.NoError(t, <-errc)
	tasks := <-got
	require.Len(t, tasks, 1, "the long poll delivered the task another process parked")
	require.Equal(t, res.Task.ID, tasks[0].ID)
	require.Equal(t, core.StateRunning, tasks[0].State)
}
