package awsstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

func TestQueueName(t *testing.T) {
	t.Parallel()
	require.Equal(t, "pl-gpu_large.fifo", awsstore.QueueName("pl-", "gpu_large"))
	a, b := awsstore.QueueName("pl-", "a.b"), awsstore.QueueName("pl-", "a_b")
	require.NotEqual(t, a, b, "a '.' does not collide with a '_'")
	require.True(t, strings.HasPrefix(a, "pl-a_b-") && strings.HasSuffix(a, ".fifo"), a)
	long := awsstore.QueueName("parkinglot-", strings.Repeat("x", 64)+".y")
	require.LessOrEqual(t, len(long), 80)
	require.NotEqual(t, long, awsstore.QueueName("parkinglot-", strings.Repeat("x", 64)+".z"))
	for _, n := range []string{a, b, long} {
		stem := strings.TrimSuffix(n, ".fifo")
		require.NotContains(t, stem, ".", n)
	}
}

// TestQueueRedeliveryOnSQSTimer lets SQS's own visibility timer (1 real
// second) run out: the unhandled message comes back, the deleted one does
// not, and a stale receipt is harmless.
func TestQueueRedeliveryOnSQSTimer(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{visibility: time.Second})
	ctx := testCtx(t)
	s := b.store
	for i := range 2 {
		require.NoError(t, s.Send(ctx, "p", core.Parked{TaskID: fmt.Sprint("t", i), Tenant: fmt.Sprint("tenant", i), Deadline: t0}))
	}
	ds, err := s.Receive(ctx, "p", 10)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	require.True(t, ds[0].Deadline.Equal(t0))
	byID := map[string]core.Delivery{}
	for _, d := range ds {
		byID[d.TaskID] = d
	}
	require.NoError(t, s.Delete(ctx, "p", byID["t0"].Receipt))

	var back []core.Delivery
	require.Eventually(t, func() bool {
		back, err = s.Receive(ctx, "p", 10)
		require.NoError(t, err)
		return len(back) > 0
	}, 20*time.Second, 200*time.Millisecond, "the held message returns when SQS's timer ends")
	require.Len(t, back, 1)
	require.Equal(t, "t1", back[0].TaskID)
	require.NoError(t, s.Delete(ctx, "p", back[0].Receipt))
	require.NoError(t, s.Delete(ctx, "p", byID["t1"].Receipt), "a stale receipt is harmless")
	require.NoError(t, s.Release(ctx, "p", byID["t1"].Receipt), "a stale receipt is harmless")
}

// TestQueueGroupsDoNotBlockEachOther: one tenant's held message blocks only
// its own group (FIFO per tenant); another tenant's message is received.
func TestQueueGroupsDoNotBlockEachOther(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	s := b.store
	for i := range 12 {
		require.NoError(t, s.Send(ctx, "p", core.Parked{TaskID: fmt.Sprintf("a%02d", i), Tenant: "acme", Deadline: t0}))
	}
	require.NoError(t, s.Send(ctx, "p", core.Parked{TaskID: "g0", Tenant: "globex", Deadline: t0}))
	first, err := s.Receive(ctx, "p", 1)
	require.NoError(t, err)
	require.Len(t, first, 1)
	require.Equal(t, "a00", first[0].TaskID, "the first tenant in line goes first")
	require.NoError(t, s.Delete(ctx, "p", first[0].Receipt))
	// acme was served last: globex is next although twelve acme messages
	// are ahead of it in the queue.
	next, err := s.Receive(ctx, "p", 1)
	require.NoError(t, err)
	require.Len(t, next, 1)
	require.Equal(t, "g0", next[0].TaskID)
	// While g0 is held, acme's messages still flow, in order.
	more, err := s.Receive(ctx, "p", 2)
	require.NoError(t, err)
	require.Len(t, more, 2)
	require.Equal(t, []string{"a01", "a02"}, []string{more[0].TaskID, more[1].TaskID})
}

// TestQueueReceiveRounds: a full batch of one tenant's messages makes
// Receive look behind it with another batch; a full batch that already
// shows several tenants does not.
func TestQueueReceiveRounds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	s := b.store
	receives := func(pool string) int {
		before := b.counter.Snapshot()
		ds, err := s.Receive(ctx, pool, 1)
		require.NoError(t, err)
		require.Len(t, ds, 1)
		return b.counter.Snapshot().Sub(before)["SQS.ReceiveMessage"].Calls
	}
	for i := range 6 {
		require.NoError(t, s.Send(ctx, "mixed", core.Parked{TaskID: fmt.Sprint("a", i), Tenant: "acme", Deadline: t0}))
		require.NoError(t, s.Send(ctx, "mixed", core.Parked{TaskID: fmt.Sprint("g", i), Tenant: "globex", Deadline: t0}))
	}
	require.Equal(t, 1, receives("mixed"))
	for i := range 12 {
		require.NoError(t, s.Send(ctx, "single", core.Parked{TaskID: fmt.Sprint("a", i), Tenant: "acme", Deadline: t0}))
	}
	require.Equal(t, 2, receives("single"), "the second batch finds the group held and ends the rounds")
}

// TestQueueTenantBuckets: one tenant's backlog is spread over
// Options.GroupBuckets message groups, so that many receivers at once hold
// one of its messages each; with one bucket the tenant is one group, and a
// held message blocks the rest of its backlog.
func TestQueueTenantBuckets(t *testing.T) {
	t.Parallel()
	for _, buckets := range []int{1, 4} {
		b := setup(t, setupOpts{groupBuckets: buckets})
		ctx := testCtx(t)
		s := b.store
		for i := range 40 {
			require.NoError(t, s.Send(ctx, "p", core.Parked{TaskID: fmt.Sprintf("a%02d", i), Tenant: "acme", Deadline: t0}))
		}
		held := map[string]bool{}
		for range buckets + 2 {
			ds, err := s.Receive(ctx, "p", 1)
			require.NoError(t, err)
			for _, d := range ds {
				require.False(t, held[d.TaskID], "a held message is received once")
				held[d.TaskID] = true
			}
		}
		require.Len(t, held, buckets, "with %d buckets, %d receivers hold one message each and no more", buckets, buckets)
	}
}

// TestQueueBucketsKeepTenantsFair: with every tenant spread over the same
// buckets, receivers that take one message at a time and delete it serve
// two tenants with a backlog in turn, although one has ten times the
// other's backlog ahead of it in the queue.
func TestQueueBucketsKeepTenantsFair(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{groupBuckets: 4})
	ctx := testCtx(t)
	s := b.store
	for i := range 40 {
		require.NoError(t, s.Send(ctx, "p", core.Parked{TaskID: fmt.Sprintf("a%02d", i), Tenant: "acme", Deadline: t0}))
	}
	for i := range 4 {
		require.NoError(t, s.Send(ctx, "p", core.Parked{TaskID: fmt.Sprintf("g%02d", i), Tenant: "globex", Deadline: t0}))
	}
	var tenants []string
	for range 8 {
		ds, err := s.Receive(ctx, "p", 1)
		require.NoError(t, err)
		require.Len(t, ds, 1)
		tenants = append(tenants, ds[0].Tenant)
		require.NoError(t, s.Delete(ctx, "p", ds[0].Receipt))
	}
	n := map[string]int{}
	for _, tn := range tenants {
		n[tn]++
	}
	require.Equal(t, map[string]int{"acme": 4, "globex": 4}, n, "served in turn: %v", tenants)
}

func TestGroupBucketsOption(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, awsstore.DefaultGroupBuckets, b.opts.GroupBuckets)
	for _, n := range []int{-1, 65} {
		o := b.opts
		o.GroupBuckets = n
		_, err := awsstore.New(testCtx(t), o)
		require.ErrorContains(t, err, "GroupBuckets")
	}
}

func TestGroupID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "acme", awsstore.GroupID("acme", "t1", 1), "one bucket: the tenant")
	g := awsstore.GroupID("acme", "t1", 4)
	require.Regexp(t, `^acme#[0-3]$`, g)
	require.Equal(t, g, awsstore.GroupID("acme", "t1", 4), "a task's group is stable")
	seen := map[string]bool{}
	for i := range 40 {
		seen[awsstore.GroupID("acme", fmt.Sprint("t", i), 4)] = true
	}
	require.Len(t, seen, 4, "tasks spread over every bucket")
	long := strings.Repeat("x", 128)
	require.Equal(t, long, awsstore.GroupID(long, "t1", 1))
	for _, tenant := range []string{long, "with space", "", "é"} {
		g := awsstore.GroupID(tenant, "t1", 64)
		require.LessOrEqual(t, len(g), 128)
		require.Regexp(t, `^[!-~]+#[0-9]+$`, g, "printable ASCII, as SQS requires")
	}
	require.NotEqual(t, awsstore.GroupID("a#1", "t1", 4), awsstore.GroupID("a", "t1", 4))
}
