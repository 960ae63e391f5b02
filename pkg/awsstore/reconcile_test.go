package awsstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// purgeQueue deletes every message of pool's queue, as an operator's
// PurgeQueue would.
func purgeQueue(t *testing.T, b *bundle, pool string) {
	t.Helper()
	ctx := testCtx(t)
	u, err := b.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(awsstore.QueueName(b.opts.QueuePrefix, pool))})
	require.NoError(t, err)
	_, err = b.sqs.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: u.QueueUrl})
	require.NoError(t, err)
}

// completeRunning completes every running task of ids and reports how many.
func completeRunning(t *testing.T, s *core.Scheduler, b *bundle, ids []string) int {
	t.Helper()
	ctx := testCtx(t)
	n := 0
	for _, id := range ids {
		tk, err := b.store.Task(ctx, id)
		require.NoError(t, err)
		if tk.State != core.StateRunning {
			continue
		}
		_, err = s.Complete(ctx, core.CompleteRequest{Tenant: tk.Tenant, TaskID: id, Lease: tk.Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
		n++
	}
	return n
}

// TestReconcileAfterPurge purges a pool's queue while tasks run and others
// are parked: the releases find nothing to hand their slots to, and the
// parked tasks, no longer flagged Unsent, have no message. The sweep's
// reconcile, once they have been parked for ReconcileEvery, re-sends them;
// a second purge right after (within SQS's 5-minute deduplication window of
// the re-sends) is repaired by the next reconcile the same way. Every task
// starts and succeeds: none is stranded until its deadline.
func TestReconcileAfterPurge(t *testing.T) {
	t.Parallel()
	clock := core.NewStubClock(t0)
	b := setup(t, setupOpts{clock: clock})
	ctx := testCtx(t)
	s, err := core.New(core.Config{Backend: b.store, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, poolCfg("p", 2, 100)))

	var ids []string
	for i := range 14 {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: fmt.Sprint("tenant", i%3), Pool: "p", MaxWait: 24 * time.Hour, RunTimeout: time.Hour})
		require.NoError(t, err)
		require.False(t, res.Task.Unsent)
		ids = append(ids, res.Task.ID)
	}
	purgeQueue(t, b, "p")
	require.Equal(t, 2, completeRunning(t, s, b, ids))
	p, err := b.store.Pool(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 0, p.Running, "the releases found no message to hand off to")
	require.Equal(t, 12, p.Parked)

	st, err := s.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Reconciled, "tasks parked for less than ReconcileEvery are left alone")
	require.Zero(t, st.Started)

	clock.Advance(core.DefaultReconcileEvery)
	st, err = s.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 12, st.Reconciled)
	require.Equal(t, 2, st.Started)

	purgeQueue(t, b, "p")
	require.Equal(t, 2, completeRunning(t, s, b, ids))
	clock.Advance(core.DefaultReconcileEvery)
	st, err = s.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 10, st.Reconciled, "the re-sends of a new reconcile are not dropped as repeats")
	require.Equal(t, 2, st.Started)

	for range 10 {
		if completeRunning(t, s, b, ids) == 0 {
			break
		}
	}
	for _, id := range ids {
		tk, err := b.store.Task(ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, tk.State, id)
	}
	st, err = s.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Reconciled)
}

// TestReconcileLeavesFullQueueAlone: a queue that holds a message for every
// parked task is not touched, however long its tasks have waited.
func TestReconcileLeavesFullQueueAlone(t *testing.T) {
	t.Parallel()
	clock := core.NewStubClock(t0)
	b := setup(t, setupOpts{clock: clock})
	ctx := testCtx(t)
	s, err := core.New(core.Config{Backend: b.store, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, poolCfg("p", 1, 100)))
	for i := range 4 {
		_, err := s.Submit(ctx, core.SubmitRequest{Tenant: fmt.Sprint("tenant", i%2), Pool: "p", MaxWait: 24 * time.Hour, RunTimeout: 24 * time.Hour})
		require.NoError(t, err)
	}
	clock.Advance(time.Hour)
	before := b.counter.Snapshot()
	st, err := s.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Reconciled)
	d := b.counter.Snapshot().Sub(before)
	require.Equal(t, 1, d["SQS.GetQueueAttributes"].Calls, "one count of the pool's queue")
	require.Zero(t, d["SQS.SendMessage"].Calls)
	shorter, err := b.store.QueueShort(ctx, "p", 3)
	require.NoError(t, err)
	require.False(t, shorter)
	short, err := b.store.QueueShort(ctx, "p", 4)
	require.NoError(t, err)
	require.True(t, short, "3 messages for 4 parked tasks")
}

// TestResendIsNotDeduplicated: SQS FIFO drops a send whose deduplication id
// it saw in the last 5 minutes. A plain re-send of a task is dropped; a
// reconcile's re-send (Parked.Resend) is not, and two of one minute are one
// message.
func TestResendIsNotDeduplicated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	s := b.store
	p := core.Parked{TaskID: "t1", Tenant: "acme", Deadline: t0.Add(time.Hour)}
	send := func(resend time.Time) {
		q := p
		q.Resend = resend
		require.NoError(t, s.Send(ctx, "p", q))
	}
	send(time.Time{})
	send(time.Time{})
	send(t0)
	send(t0.Add(30 * time.Second))
	send(t0.Add(time.Minute))
	got := 0
	for range 10 {
		ds, err := s.Receive(ctx, "p", 10)
		require.NoError(t, err)
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			require.Equal(t, "t1", d.TaskID)
			require.NoError(t, s.Delete(ctx, "p", d.Receipt))
			got++
		}
	}
	require.Equal(t, 3, got, "the first send, and one re-send per minute")
}

// TestNonTerminalPages: NonTerminal pages through every non-terminal task,
// parked and running, over every index shard, each once; terminal ones are
// not in it.
func TestNonTerminalPages(t *testing.T) {
	t.Parallel()
	clock := core.NewStubClock(t0)
	b := setup(t, setupOpts{clock: clock})
	ctx := testCtx(t)
	s, err := core.New(core.Config{Backend: b.store, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, poolCfg("p", 3, 100)))
	want := map[string]bool{}
	var first core.Task
	for i := range 11 {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", MaxWait: time.Hour, RunTimeout: time.Hour})
		require.NoError(t, err)
		want[res.Task.ID] = true
		if i == 0 {
			first = res.Task
		}
	}
	_, err = s.Cancel(ctx, "acme", first.ID)
	require.NoError(t, err)
	delete(want, first.ID)

	got := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 50, "paging ends")
		ids, next, err := b.store.NonTerminal(ctx, after, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, len(ids), 3)
		for _, id := range ids {
			require.False(t, got[id], "%s returned twice", id)
			got[id] = true
		}
		if next == "" {
			break
		}
		after = next
	}
	require.Equal(t, want, got)
	_, _, err = b.store.NonTerminal(ctx, "bogus", 3)
	require.Error(t, err)
}

// TestReconcileAfterQueueReplaced: the stack is replaced while tasks are
// parked: the queue is deleted and created again, empty, and a new process
// comes up on the retained table. Its first sweep reconciles: the parked
// tasks still before their deadline are re-sent and start, one after the
// other; the one whose deadline passed meanwhile expires.
func TestReconcileAfterQueueReplaced(t *testing.T) {
	t.Parallel()
	clock := core.NewStubClock(t0)
	b := setup(t, setupOpts{clock: clock})
	ctx := testCtx(t)
	s, err := core.New(core.Config{Backend: b.store, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, poolCfg("p", 1, 100)))
	submit := func(tenant string, wait time.Duration) string {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: "p", MaxWait: wait, RunTimeout: time.Hour})
		require.NoError(t, err)
		return res.Task.ID
	}
	ids := []string{submit("acme", time.Hour), submit("acme", time.Hour), submit("globex", time.Hour)}
	short := submit("globex", 3*time.Minute)

	u, err := b.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(awsstore.QueueName(b.opts.QueuePrefix, "p"))})
	require.NoError(t, err)
	_, err = b.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
	require.NoError(t, err)
	clock.Advance(core.DefaultReconcileEvery)

	store2, err := awsstore.New(ctx, b.opts)
	require.NoError(t, err)
	require.NoError(t, store2.CreateResources(ctx), "the new stack's queue")
	s2, err := core.New(core.Config{Backend: store2, Clock: clock})
	require.NoError(t, err)
	require.Equal(t, 1, completeRunning(t, s2, b, ids), "the task that ran")
	st, err := s2.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Expired, "past its deadline")
	require.Equal(t, 2, st.Reconciled)
	require.Equal(t, 1, st.Started)
	done := 0
	for range 5 {
		done += completeRunning(t, s2, b, ids) // each completion hands its slot to the next
	}
	require.Equal(t, 2, done)
	for _, id := range ids {
		tk, err := b.store.Task(ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, tk.State, id)
	}
	tk, err := b.store.Task(ctx, short)
	require.NoError(t, err)
	require.Equal(t, core.StateExpired, tk.State)
	p, err := b.store.Pool(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 0, p.Running)
	require.Equal(t, 0, p.Parked)
}
