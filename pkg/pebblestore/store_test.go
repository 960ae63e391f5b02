package pebblestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(cleanup{m})
}

// cleanup removes the benchmarks' shared data set after the run.
type cleanup struct{ m *testing.M }

func (c cleanup) Run() int {
	code := c.m.Run()
	if auditDir != "" {
		_ = os.RemoveAll(auditDir)
	}
	return code
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type bundle struct {
	ctx   context.Context
	dir   string
	clock *core.StubClock
	store *pebblestore.Store
	sched *core.Scheduler
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{ctx: t.Context(), dir: t.TempDir(), clock: core.NewStubClock(t0)}
	b.open(t)
	return b
}

// open (re)opens the store on b.dir and closes it when the test ends.
func (b *bundle) open(t *testing.T) {
	t.Helper()
	s, err := pebblestore.Open(b.dir, pebblestore.Options{Clock: b.clock})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	b.store = s
	b.sched, err = core.New(core.Config{Backend: s, Clock: b.clock})
	require.NoError(t, err)
}

func (b *bundle) reopen(t *testing.T) {
	t.Helper()
	require.NoError(t, b.store.Close())
	b.open(t)
}

func (b *bundle) putPool(t *testing.T, name string, capacity, maxParked int) {
	t.Helper()
	require.NoError(t, b.sched.PutPool(b.ctx, core.PoolConfig{
		Name: name, Capacity: capacity, MaxParked: maxParked, DefaultMaxWait: time.Hour, RunTimeout: time.Minute,
	}))
}

func (b *bundle) submit(t *testing.T, tenant, pool string) core.Task {
	t.Helper()
	res, err := b.sched.Submit(b.ctx, core.SubmitRequest{Tenant: tenant, Pool: pool})
	require.NoError(t, err)
	return res.Task
}

func task(id, tenant, pool string, state core.State, at time.Time) core.Task {
	t := core.Task{ID: id, Tenant: tenant, Pool: pool, Recipient: tenant, State: state,
		SubmittedAt: at, Deadline: at.Add(time.Hour), RunTimeout: time.Minute}
	if state == core.StateRunning {
		t.StartedAt, t.Lease, t.LeaseExpiresAt = at, "lease-"+id, at.Add(time.Minute)
	}
	return t
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putPool(t, "gpu", 1, 1)
	a := b.submit(t, "acme", "gpu")
	require.Equal(t, core.StateRunning, a.State)
	p := b.submit(t, "acme", "gpu")
	require.Equal(t, core.StateParked, p.State)
	res, err := b.sched.Submit(b.ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
	require.ErrorIs(t, err, core.ErrPoolFull)
	require.Equal(t, core.StateRejected, res.Task.State)

	_, err = b.sched.Complete(b.ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)
	pt, err := b.sched.Task(b.ctx, "acme", p.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, pt.State, "the parked task is woken when the slot frees")

	page, err := b.sched.Mailbox(b.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme"})
	require.NoError(t, err)
	var types []string
	for _, m := range page.Messages {
		types = append(types, m.TaskID[:4]+":"+string(m.Type))
	}
	require.Equal(t, []string{a.ID[:4] + ":started", res.Task.ID[:4] + ":rejected", a.ID[:4] + ":succeeded", p.ID[:4] + ":started"}, types)

	b.clock.Advance(2 * time.Minute)
	st, err := b.sched.Sweep(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.TimedOut)
	pool, err := b.store.Pool(b.ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, 0, pool.Running)
	require.Equal(t, 0, pool.Parked)
}

func TestCommitConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putPool(t, "p", 1, 1)
	ctx := b.ctx

	_, err := b.store.Pool(ctx, "nope")
	require.ErrorIs(t, err, core.ErrPoolNotFound)
	require.ErrorIs(t, b.store.Commit(ctx, &core.Txn{Pool: "nope", RunningDelta: 1}), core.ErrPoolNotFound)

	run := task("t1", "acme", "p", core.StateRunning, t0)
	ev := core.Event{At: t0, Tenant: "acme", Pool: "p", TaskID: "t1", Type: core.EventStart, To: core.StateRunning}
	msg := core.Message{Tenant: "acme", Recipient: "acme", TaskID: "t1", Pool: "p", Type: core.MessageStarted, At: t0}
	key := &core.KeyRecord{Tenant: "acme", Key: "k", TaskID: "t1"}
	require.NoError(t, b.store.Commit(ctx, &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true,
		Tasks: []core.TaskWrite{{Task: run}}, Key: key, Events: []core.Event{ev}, Messages: []core.Message{msg}}))
	got, err := b.store.Task(ctx, "t1")
	require.NoError(t, err)
	require.EqualValues(t, 1, got.Version)

	// Each failed condition writes nothing: neither the task, nor the
	// message, nor the event, nor the counters.
	fail := []struct {
		txn  core.Txn
		want error
	}{
		{core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true, Tasks: []core.TaskWrite{{Task: task("t2", "acme", "p", core.StateRunning, t0)}}}, core.ErrNoCapacity},
		{core.Txn{Pool: "p", Tasks: []core.TaskWrite{{Task: run}}}, core.ErrConflict},
		{core.Txn{Pool: "p", Tasks: []core.TaskWrite{{Task: run, Expect: 7}}}, core.ErrConflict},
		{core.Txn{Pool: "p", Tasks: []core.TaskWrite{{Task: task("t3", "acme", "p", core.StateParked, t0)}}, Key: key}, core.ErrKeyExists},
		{core.Txn{Pool: "p", ParkedDelta: 1, NeedParkRoom: true, Tasks: []core.TaskWrite{{Task: task("t4", "acme", "p", core.StateParked, t0), Expect: 0}, {Task: run, Expect: 1}}}, nil},
		{core.Txn{Pool: "p", ParkedDelta: 1, NeedParkRoom: true, Tasks: []core.TaskWrite{{Task: task("t5", "acme", "p", core.StateParked, t0)}}}, core.ErrPoolFull},
		{core.Txn{Pool: "p", FirstInLine: true, Tasks: []core.TaskWrite{{Task: task("t6", "acme", "p", core.StateParked, t0)}}}, core.ErrNoCapacity},
	}
	for i, f := range fail {
		txn := f.txn
		txn.Events = []core.Event{{At: t0.Add(time.Duration(i+1) * time.Second), Tenant: "acme", TaskID: fmt.Sprint("f", i), Type: "x"}}
		txn.Messages = []core.Message{{Tenant: "acme", Recipient: "acme", TaskID: fmt.Sprint("f", i), At: t0}}
		err := b.store.Commit(ctx, &txn)
		if f.want == nil {
			require.NoError(t, err, i)
			continue
		}
		require.ErrorIs(t, err, f.want, i)
	}
	for _, id := range []string{"t2", "t3", "t5", "t6"} {
		_, err := b.store.Task(ctx, id)
		require.ErrorIs(t, err, core.ErrNotFound, id)
	}
	pool, err := b.store.Pool(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 1, pool.Running)
	require.Equal(t, 1, pool.Parked)
	msgs, err := b.store.Messages(ctx, "acme", "acme", 0, 100)
	require.NoError(t, err)
	require.Len(t, msgs, 2, "the first commit's message and the successful one's")
	require.Equal(t, "f4", msgs[1].TaskID)
	evs, err := b.store.Events(ctx, core.AuditQuery{Tenant: "acme", From: t0, To: t0.Add(time.Hour), Limit: 100})
	require.NoError(t, err)
	require.Len(t, evs, 2)

	// Writing one task twice in a transaction is refused.
	err = b.store.Commit(ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: task("t7", "a", "p", core.StateParked, t0)}, {Task: task("t7", "a", "p", core.StateParked, t0)}}})
	require.Error(t, err)
	_, err = b.store.Task(ctx, "t7")
	require.ErrorIs(t, err, core.ErrNotFound)
}

// Concurrent commits to one mailbox get cursors that increase in the order
// the messages become visible: a reader following the cursor never skips one.
func TestCursorsIncreaseInCommitOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				err := b.store.Commit(b.ctx, &core.Txn{Messages: []core.Message{{Tenant: "t", Recipient: "r", TaskID: fmt.Sprintf("%d-%d", w, i), At: t0}}})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// A reader that follows the cursor while writers write.
	seen := map[string]bool{}
	var after core.Cursor
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		msgs, err := b.store.Messages(b.ctx, "t", "r", after, 7)
		require.NoError(t, err)
		for _, m := range msgs {
			require.Greater(t, m.Cursor, after)
			after = m.Cursor
			require.False(t, seen[m.TaskID], "duplicate %s", m.TaskID)
			seen[m.TaskID] = true
		}
		if finished && len(msgs) == 0 {
			break
		}
	}
	require.Len(t, seen, writers*each, "the follower saw every message")
}

func TestAudit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// Out of time order, equal times, two tenants, two pools.
	for i, s := range []int{5, 1, 3, 3, 3, 9, 0} {
		pool := "p"
		if i%2 == 1 {
			pool = "q"
		}
		evs := []core.Event{{At: at(s), Tenant: "acme", Pool: pool, TaskID: fmt.Sprint("t", i), Type: "submit"}}
		evs = append(evs, core.Event{At: at(s), Tenant: "other", TaskID: "x", Type: "submit"})
		require.NoError(t, b.store.Commit(b.ctx, &core.Txn{Events: evs}))
	}
	q := core.AuditQuery{Tenant: "acme", From: at(1), To: at(9), Limit: 100}
	all, err := b.store.Events(b.ctx, q)
	require.NoError(t, err)
	var ids []string
	for _, e := range all {
		ids = append(ids, e.TaskID)
		require.Equal(t, "acme", e.Tenant)
	}
	require.Equal(t, []string{"t1", "t2", "t3", "t4", "t0"}, ids, "[from, to), by (At, Seq)")
	require.True(t, slices.IsSortedFunc(all, func(a, b core.Event) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return int(a.Seq) - int(b.Seq)
	}))

	// Pages of two follow each other without gaps or repeats.
	var paged []string
	q.Limit = 2
	for {
		page, err := b.sched.Audit(b.ctx, q)
		require.NoError(t, err)
		for _, e := range page.Events {
			paged = append(paged, e.TaskID)
		}
		if page.Next.IsZero() {
			break
		}
		q.After = page.Next
	}
	require.Equal(t, ids, paged)

	pq, err := b.store.Events(b.ctx, core.AuditQuery{Tenant: "acme", From: at(0), To: at(10), Pool: "q", Limit: 100})
	require.NoError(t, err)
	require.Len(t, pq, 3)
	tq, err := b.store.Events(b.ctx, core.AuditQuery{Tenant: "acme", From: at(0), To: at(10), TaskID: "t5", Limit: 100})
	require.NoError(t, err)
	require.Len(t, tq, 1)
	require.Equal(t, at(9), tq[0].At)
}

func TestDueAndUnsent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putPool(t, "p", 10, 10)
	late := task("late", "a", "p", core.StateParked, t0.Add(time.Hour))
	late.Unsent = true
	soon := task("soon", "a", "p", core.StateRunning, t0)
	require.NoError(t, b.store.Commit(b.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: late}, {Task: soon}}}))
	ids, err := b.store.Due(b.ctx, t0.Add(3*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"soon", "late"}, ids, "soonest first")
	ids, err = b.store.Due(b.ctx, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"soon"}, ids, "at or before t")
	un, err := b.store.Unsent(b.ctx, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"late"}, un)

	// Moving a task re-indexes it; ending it unindexes it.
	late.Unsent = false
	late.State = core.StateExpired
	soon.LeaseExpiresAt = t0.Add(2 * time.Hour)
	require.NoError(t, b.store.Commit(b.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: late, Expect: 1}, {Task: soon, Expect: 1}}}))
	ids, err = b.store.Due(b.ctx, t0.Add(90*time.Minute), 10)
	require.NoError(t, err)
	require.Empty(t, ids)
	ids, err = b.store.Due(b.ctx, t0.Add(3*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"soon"}, ids)
	un, err = b.store.Unsent(b.ctx, 10)
	require.NoError(t, err)
	require.Empty(t, un)
}

func parked(tenant, id string) core.Parked {
	return core.Parked{TaskID: id, Tenant: tenant, Deadline: t0.Add(time.Hour)}
}

func receiveIDs(t *testing.T, b *bundle, pool string, n int) ([]string, []core.Delivery) {
	t.Helper()
	ds, err := b.store.Receive(b.ctx, pool, n)
	require.NoError(t, err)
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.TaskID
	}
	return ids, ds
}

func TestQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, p := range []core.Parked{parked("a", "a1"), parked("a", "a2"), parked("a", "a3"), parked("b", "b1"), parked("b", "b2")} {
		require.NoError(t, b.store.Send(b.ctx, "p", p))
	}
	ids, ds := receiveIDs(t, b, "p", 3)
	require.Equal(t, []string{"a1", "b1", "a2"}, ids, "FIFO per tenant, tenants in turn")
	require.NoError(t, b.store.Delete(b.ctx, "p", ds[0].Receipt))
	require.NoError(t, b.store.Release(b.ctx, "p", ds[1].Receipt))
	ids, _ = receiveIDs(t, b, "p", 10)
	require.ElementsMatch(t, []string{"b1", "b2", "a3"}, ids)
	ids, _ = receiveIDs(t, b, "p", 10)
	require.Empty(t, ids, "in flight messages are hidden")

	b.clock.Advance(31 * time.Second)
	ids, _ = receiveIDs(t, b, "p", 10)
	require.ElementsMatch(t, []string{"a2", "b1", "b2", "a3"}, ids, "visible again after the visibility timeout; a1 was deleted")
	ids, _ = receiveIDs(t, b, "other", 10)
	require.Empty(t, ids, "pools are separate")
}

func TestWatchMailbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ch, stop := b.store.WatchMailbox("t", "r")
	defer stop()
	other, stopOther := b.store.WatchMailbox("t", "x")
	defer stopOther()
	require.NoError(t, b.store.Commit(b.ctx, &core.Txn{Messages: []core.Message{{Tenant: "t", Recipient: "r", At: t0}}}))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no signal")
	}
	msgs, err := b.store.Messages(b.ctx, "t", "r", 0, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1, "the message is readable when the signal arrives")
	select {
	case <-other:
		t.Fatal("another mailbox was signalled")
	default:
	}
}

func TestAckAndPurge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 2500 // more than two purge chunks
	for i := 0; i < n; i += 100 {
		txn := &core.Txn{}
		for j := i; j < i+100; j++ {
			at := t0.Add(time.Duration(j) * time.Second)
			txn.Messages = append(txn.Messages, core.Message{Tenant: "t", Recipient: fmt.Sprint("r", j%3), TaskID: fmt.Sprint(j), At: at})
			txn.Events = append(txn.Events, core.Event{Tenant: fmt.Sprint("t", j%3), TaskID: fmt.Sprint(j), At: at, Type: "x"})
		}
		require.NoError(t, b.store.Commit(b.ctx, txn))
	}
	msgs, err := b.store.Messages(b.ctx, "t", "r0", 0, 1000)
	require.NoError(t, err)
	require.Len(t, msgs, 834)
	require.NoError(t, b.store.Ack(b.ctx, "t", "r0", msgs[9].Cursor))
	require.NoError(t, b.store.Ack(b.ctx, "t", "r0", msgs[4].Cursor), "acks never move back")
	after, err := b.store.Messages(b.ctx, "t", "r0", 0, 1000)
	require.NoError(t, err)
	require.Equal(t, msgs[10:], after)

	cut := t0.Add(2100 * time.Second)
	purged, err := b.store.Purge(b.ctx, cut, cut)
	require.NoError(t, err)
	require.Equal(t, 2*2100, purged)
	left := 0
	for r := range 3 {
		msgs, err := b.store.Messages(b.ctx, "t", fmt.Sprint("r", r), 0, 1000)
		require.NoError(t, err)
		for _, m := range msgs {
			require.False(t, m.At.Before(cut))
		}
		left += len(msgs)
		evs, err := b.store.Events(b.ctx, core.AuditQuery{Tenant: fmt.Sprint("t", r), From: t0, To: t0.Add(time.Hour), Limit: 1000})
		require.NoError(t, err)
		for _, e := range evs {
			require.False(t, e.At.Before(cut))
		}
		left += len(evs)
	}
	require.Equal(t, 2*(n-2100), left)
}

// Everything acknowledged survives a close and a reopen: pools, running
// tasks with their leases, parked tasks in order (received ones visible
// again), mailboxes with their acked cursors, the audit trail; and cursors
// keep increasing.
func TestReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putPool(t, "p", 1, 10)
	run := b.submit(t, "acme", "p")
	var want []string
	for i := range 4 {
		tenant := "acme"
		if i%2 == 1 {
			tenant = "beta"
		}
		want = append(want, b.submit(t, tenant, "p").ID)
	}
	page, err := b.sched.Mailbox(b.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme"})
	require.NoError(t, err)
	require.Len(t, page.Messages, 1)
	require.NoError(t, b.sched.Ack(b.ctx, "acme", "acme", page.Next))
	// One message in flight at the moment of the restart.
	ds, err := b.store.Receive(b.ctx, "p", 1)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	audit, err := b.sched.Audit(b.ctx, core.AuditQuery{Tenant: "acme"})
	require.NoError(t, err)
	poolBefore, err := b.store.Pool(b.ctx, "p")
	require.NoError(t, err)

	b.reopen(t)

	got, err := b.store.Task(b.ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, got.State)
	require.Equal(t, run.Lease, got.Lease)
	require.True(t, run.LeaseExpiresAt.Equal(got.LeaseExpiresAt))
	poolAfter, err := b.store.Pool(b.ctx, "p")
	require.NoError(t, err)
	require.Equal(t, poolBefore, poolAfter)
	ids, ds := receiveIDs(t, b, "p", 10)
	require.Equal(t, want, ids, "parked in order, the in-flight one visible again")
	for _, d := range slices.Backward(ds) {
		require.NoError(t, b.store.Release(b.ctx, "p", d.Receipt))
	}
	audit2, err := b.sched.Audit(b.ctx, core.AuditQuery{Tenant: "acme"})
	require.NoError(t, err)
	require.Equal(t, audit, audit2)
	msgs, err := b.store.Messages(b.ctx, "acme", "acme", 0, 10)
	require.NoError(t, err)
	require.Empty(t, msgs, "the ack survived")

	// Completing the running task wakes a parked one (the first of one of
	// the tenants); the new messages' cursors follow the old ones.
	_, err = b.sched.Complete(b.ctx, core.CompleteRequest{Tenant: "acme", TaskID: run.ID, Lease: run.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)
	msgs, err = b.store.Messages(b.ctx, "acme", "acme", 0, 10)
	require.NoError(t, err)
	require.NotEmpty(t, msgs)
	require.Greater(t, msgs[0].Cursor, page.Next)
	require.Equal(t, core.MessageType(core.StateSucceeded), msgs[0].Type)
	started := 0
	for i, id := range want[:2] {
		tk, err := b.store.Task(b.ctx, id)
		require.NoError(t, err)
		if tk.State == core.StateRunning {
			started++
			box, err := b.store.Messages(b.ctx, tk.Tenant, tk.Recipient, 0, 10)
			require.NoError(t, err)
			require.Equal(t, id, box[len(box)-1].TaskID, i)
			require.Equal(t, core.MessageStarted, box[len(box)-1].Type)
		}
	}
	require.Equal(t, 1, started)
	pool, err := b.store.Pool(b.ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 1, pool.Running)
	require.Equal(t, 3, pool.Parked)
}

func TestSecondOpenFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := pebblestore.Open(b.dir, pebblestore.Options{})
	require.ErrorContains(t, err, "data directory "+b.dir+" is in use by another process")
	require.ErrorIs(t, err, pebblestore.ErrInUse)
	require.NoError(t, b.store.Close())
	s, err := pebblestore.Open(b.dir, pebblestore.Options{})
	require.NoError(t, err, "free again after Close")
	require.NoError(t, s.Close())
}

func TestClosed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.store.Close())
	require.NoError(t, b.store.Close(), "Close twice is harmless")
	require.ErrorIs(t, b.store.Commit(b.ctx, &core.Txn{}), pebblestore.ErrClosed)
}

// populated returns a closed data directory with some of everything in it.
func populated(t *testing.T, flush bool) string {
	t.Helper()
	b := &bundle{ctx: t.Context(), dir: t.TempDir(), clock: core.NewStubClock(t0)}
	s, err := pebblestore.Open(b.dir, pebblestore.Options{Clock: b.clock})
	require.NoError(t, err)
	b.store = s
	b.sched, err = core.New(core.Config{Backend: s, Clock: b.clock})
	require.NoError(t, err)
	b.putPool(t, "p", 1, 100)
	for range 50 {
		res, err := b.sched.Submit(b.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Payload: json.RawMessage(`{"pad":"` + string(make([]byte, 0)) + `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)})
		require.NoError(t, err)
		require.NotEqual(t, core.StateRejected, res.Task.State)
	}
	if flush {
		require.NoError(t, pebblestore.Flush(b.store))
	}
	require.NoError(t, b.store.Close())
	return b.dir
}

// readAll reads everything populated wrote, as a comparable summary.
func readAll(s *pebblestore.Store) (string, error) {
	ctx := context.Background()
	pools, err := s.Pools(ctx)
	if err != nil {
		return "", err
	}
	msgs, err := s.Messages(ctx, "acme", "acme", 0, 1000)
	if err != nil {
		return "", err
	}
	evs, err := s.Events(ctx, core.AuditQuery{Tenant: "acme", From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Limit: 1000})
	if err != nil {
		return "", err
	}
	ids, err := s.Due(ctx, t0.Add(48*time.Hour), 1000)
	if err != nil {
		return "", err
	}
	var tasks []core.Task
	for _, id := range ids {
		tk, err := s.Task(ctx, id)
		if err != nil {
			return "", err
		}
		tasks = append(tasks, tk)
	}
	return fmt.Sprintf("%v\n%v\n%v\n%v", pools, msgs, evs, tasks), nil
}

// damage copies the data directory dir, applies hurt to the named file of
// the copy, and reports whether the copy fails with ErrCorrupt at Open or
// at a full read (true), or reads exactly want (false). Anything else —
// another error, a panic, different data — fails the test.
func damage(t *testing.T, dir, name, want string, hurt func([]byte) []byte) bool {
	t.Helper()
	cp := t.TempDir()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		if e.Name() == name {
			data = hurt(slices.Clone(data))
		}
		require.NoError(t, os.WriteFile(filepath.Join(cp, e.Name()), data, 0o600))
	}
	s, err := pebblestore.Open(cp, pebblestore.Options{})
	if err != nil {
		require.ErrorIs(t, err, pebblestore.ErrCorrupt, "%s", name)
		return true
	}
	defer func() { require.NoError(t, s.Close()) }()
	got, err := readAll(s)
	if err != nil {
		require.ErrorIs(t, err, pebblestore.ErrCorrupt, "%s", name)
		return true
	}
	require.Equal(t, want, got, "%s: damage went unnoticed and changed the data", name)
	return false
}

func reference(t *testing.T, dir string) string {
	t.Helper()
	ref, err := pebblestore.Open(dir, pebblestore.Options{})
	require.NoError(t, err)
	want, err := readAll(ref)
	require.NoError(t, err)
	require.NoError(t, ref.Close())
	return want
}

func filesLike(t *testing.T, dir, suffix string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) || strings.HasPrefix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	require.NotEmpty(t, out, suffix)
	return out
}

func TestTruncatedFile(t *testing.T) {
	t.Parallel()
	dir := populated(t, true)
	want := reference(t, dir)
	for _, name := range filesLike(t, dir, ".sst") {
		for _, frac := range []int{0, 1, 2, 3} {
			detected := damage(t, dir, name, want, func(b []byte) []byte { return b[:len(b)*frac/4] })
			require.True(t, detected, "%s cut to %d/4", name, frac)
		}
	}
	// Pebble keeps the previous MANIFEST for a while: cutting that one
	// loses nothing; cutting the current one is detected.
	detected := 0
	for _, name := range filesLike(t, dir, "MANIFEST") {
		for _, frac := range []int{0, 1, 2, 3} {
			if damage(t, dir, name, want, func(b []byte) []byte { return b[:len(b)*frac/4] }) {
				detected++
			}
		}
	}
	require.GreaterOrEqual(t, detected, 4)
}

func TestCorruptedFile(t *testing.T) {
	t.Parallel()
	for _, flush := range []bool{true, false} {
		dir := populated(t, flush)
		want := reference(t, dir)
		detected := 0
		for _, suffix := range []string{".sst", "MANIFEST", ".log"} {
			if !flush && suffix == ".sst" {
				continue
			}
			for _, name := range filesLike(t, dir, suffix) {
				size := fileSize(t, filepath.Join(dir, name))
				for off := int64(0); off < size; off += max(1, size/40) {
					if damage(t, dir, name, want, func(b []byte) []byte {
						for i := off; i < off+8 && i < int64(len(b)); i++ {
							b[i] ^= 0x5a
						}
						return b
					}) {
						detected++
					}
				}
			}
		}
		require.Positive(t, detected)
	}
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	require.NoError(t, err)
	return fi.Size()
}

// A deadline that passes while the store is closed expires the task on the
// first sweep after the restart; it never starts, even with a free slot.
func TestDeadlinePassedWhileDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putPool(t, "p", 1, 10)
	run := b.submit(t, "acme", "p")
	res, err := b.sched.Submit(b.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", MaxWait: time.Minute})
	require.NoError(t, err)
	require.Equal(t, core.StateParked, res.Task.State)
	b.reopen(t)

	b.clock.Advance(2 * time.Minute)
	// The running task's lease (1 minute) ended too: the sweep reclaims it
	// and the parked task expires instead of starting, whether the sweep
	// reaches it first or the reclaimed slot's wake-up does.
	st, err := b.sched.Sweep(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.TimedOut)
	parked, err := b.store.Task(b.ctx, res.Task.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateExpired, parked.State)
	require.True(t, parked.StartedAt.IsZero())
	ran, err := b.store.Task(b.ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateTimedOut, ran.State)
	pool, err := b.store.Pool(b.ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 0, pool.Running)
	require.Equal(t, 0, pool.Parked)
}
