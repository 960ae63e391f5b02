package coretest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

func exerciseWakeAndIsolation(t *testing.T, newBackend NewBackend) {
	t.Run("LoweredCapacity", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 3, 10))
		var run []core.Task
		for range 3 {
			run = append(run, tb.submit(t, "acme", "p"))
		}
		parked := tb.submit(t, "acme", "p")
		require.Equal(t, core.StateParked, parked.State)
		require.NoError(t, tb.s.PutPool(tb.ctx, poolCfg("p", 1, 10)))
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 3, Parked: 1, MaxParked: 10}, tb.stats(t, "p"))

		tb.complete(t, run[0], core.StateSucceeded)
		require.Equal(t, core.StateParked, tb.task(t, "acme", parked.ID).State, "running 2 of capacity 1")
		later := tb.submit(t, "globex", "p")
		require.Equal(t, core.StateParked, later.State, "no admission above capacity")
		tb.complete(t, run[1], core.StateSucceeded)
		require.Equal(t, core.StateParked, tb.task(t, "acme", parked.ID).State, "running 1 of capacity 1")
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Zero(t, st.Started)
		require.Equal(t, 1, tb.stats(t, "p").Running)

		tb.complete(t, run[2], core.StateSucceeded)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", parked.ID).State)
		require.Equal(t, core.StateParked, tb.task(t, "globex", later.ID).State)
		require.Equal(t, 1, tb.stats(t, "p").Running)

		// Raising capacity starts parked work at once.
		require.NoError(t, tb.s.PutPool(tb.ctx, poolCfg("p", 2, 10)))
		require.Equal(t, core.StateRunning, tb.task(t, "globex", later.ID).State)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Running: 2, Parked: 0, MaxParked: 10}, tb.stats(t, "p"))
	})

	t.Run("ReleaseHandsSlotToNextParked", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 10))
		a := tb.submit(t, "acme", "p")
		var parked []core.Task
		for range 3 {
			p := tb.submit(t, "acme", "p")
			require.Equal(t, core.StateParked, p.State)
			parked = append(parked, p)
		}
		// Each way a running task ends hands its slot to the next parked
		// task in the same transition: the start is at the release's
		// instant, and the pool never shows the slot free.
		done := tb.complete(t, a, core.StateSucceeded)
		b := tb.task(t, "acme", parked[0].ID)
		require.Equal(t, core.StateRunning, b.State)
		require.True(t, b.StartedAt.Equal(done.EndedAt))
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, Parked: 2, MaxParked: 10}, tb.stats(t, "p"))

		tb.clock.Advance(time.Second)
		cancelled, err := tb.s.Cancel(tb.ctx, "acme", b.ID)
		require.NoError(t, err)
		c := tb.task(t, "acme", parked[1].ID)
		require.Equal(t, core.StateRunning, c.State)
		require.True(t, c.StartedAt.Equal(cancelled.EndedAt))

		tb.clock.Advance(time.Minute) // c's lease ends
		st, err := tb.s.Sweep(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.TimedOut)
		require.Zero(t, st.Started, "the reclaim started d itself")
		d := tb.task(t, "acme", parked[2].ID)
		require.Equal(t, core.StateRunning, d.State)
		require.True(t, d.StartedAt.Equal(tb.task(t, "acme", c.ID).EndedAt))
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, MaxParked: 10}, tb.stats(t, "p"))

		// Every transition is in the audit trail and every message in the
		// mailbox, once.
		for _, id := range []string{b.ID, c.ID} {
			require.Len(t, tb.transitions(t, "acme", id), 3, id)
		}
		require.Equal(t, []core.MessageType{core.MessageStarted, "cancelled"}, messageTypes(tb.messagesOf(t, "acme", "acme", b.ID)))
		require.Equal(t, []core.MessageType{core.MessageStarted, "timed_out"}, messageTypes(tb.messagesOf(t, "acme", "acme", c.ID)))
		require.Equal(t, []core.MessageType{core.MessageStarted}, messageTypes(tb.messagesOf(t, "acme", "acme", d.ID)))
		ds, err := tb.b.Receive(tb.ctx, "p", 10)
		require.NoError(t, err)
		require.Empty(t, ds, "every handed-off task's message was deleted")
	})

	t.Run("HandOffStartsWhatABlockedReceiveLeft", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 2, 10))
		a1 := tb.submit(t, "acme", "p")
		a2 := tb.submit(t, "acme", "p")
		b1 := tb.submit(t, "acme", "p")
		b2 := tb.submit(t, "acme", "p")
		require.Equal(t, core.StateParked, b2.State)
		// Another dispatcher holds b1's message; on an SQS FIFO queue that
		// blocks acme's group, so a2's release finds nothing to receive
		// and frees its slot with b2 still parked.
		ds, err := tb.b.Receive(tb.ctx, "p", 1)
		require.NoError(t, err)
		require.Len(t, ds, 1)
		require.Equal(t, b1.ID, ds[0].TaskID)
		tb.complete(t, a2, core.StateSucceeded)
		// The holder gives its message back; the next release hands its
		// slot to b1 and, the group unblocked, starts b2 in the free slot.
		require.NoError(t, tb.b.Release(tb.ctx, "p", ds[0].Receipt))
		tb.complete(t, a1, core.StateSucceeded)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", b1.ID).State)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", b2.ID).State)
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 2, Running: 2, MaxParked: 10}, tb.stats(t, "p"))
	})

	t.Run("RefusedCompletionsGiveBackWhatTheyReceived", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 10), poolCfg("q", 1, 10))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		qa := tb.submit(t, "acme", "q")
		qb := tb.submit(t, "acme", "q")
		require.Equal(t, core.StateParked, b.State)
		require.Equal(t, core.StateParked, qb.State)
		// A completion receives the next parked message of its lease's pool
		// while it reads its task. Each of these is refused after the
		// receive: the message goes back, and nothing changed.
		for _, c := range []struct {
			req  core.CompleteRequest
			want error
		}{
			{core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: "not-a-lease"}, core.ErrLeaseLost},
			{core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: qa.Lease}, core.ErrLeaseLost}, // a lease of pool q
			{core.CompleteRequest{Tenant: "globex", TaskID: a.ID, Lease: a.Lease}, core.ErrNotFound},
		} {
			c.req.Status = core.StateSucceeded
			_, err := tb.s.Complete(tb.ctx, c.req)
			require.ErrorIs(t, err, c.want)
		}
		require.Equal(t, core.PoolStats{Name: "p", Capacity: 1, Running: 1, Parked: 1, MaxParked: 10}, tb.stats(t, "p"))
		require.Equal(t, core.PoolStats{Name: "q", Capacity: 1, Running: 1, Parked: 1, MaxParked: 10}, tb.stats(t, "q"))
		// Both messages are back in their queues: each release hands its
		// slot off.
		tb.complete(t, a, core.StateSucceeded)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", b.ID).State)
		tb.complete(t, qa, core.StateSucceeded)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", qb.ID).State)
		// A repeat of a's completion finds nothing to hand off (p has
		// nothing parked): it answers a as it ended.
		again := tb.complete(t, a, core.StateSucceeded)
		require.Equal(t, a.ID, again.ID)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", b.ID).State)
	})

	t.Run("FairnessBetweenTenants", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 100))
		holder := tb.submit(t, "acme", "p")
		for range 20 {
			require.Equal(t, core.StateParked, tb.submit(t, "acme", "p").State)
		}
		var bTasks []string
		for range 3 {
			bt := tb.submit(t, "globex", "p")
			require.Equal(t, core.StateParked, bt.State)
			bTasks = append(bTasks, bt.ID)
		}
		// Release the slot again and again; note who gets it.
		var starts []string
		cur := holder
		for range 8 {
			tb.complete(t, cur, core.StateSucceeded)
			var next *core.Task
			for _, tenant := range []string{"acme", "globex"} {
				for _, m := range allMessages(t, tb.ctx, tb.b, tenant, tenant) {
					task := tb.task(t, tenant, m.TaskID)
					if m.Type == core.MessageStarted && task.State == core.StateRunning {
						require.Nil(t, next, "two tasks running in a pool of capacity 1")
						next = &task
					}
				}
			}
			require.NotNil(t, next, "no task woke")
			starts = append(starts, next.Tenant)
			cur = *next
		}
		first := -1
		for i, tenant := range starts {
			if tenant == "globex" {
				first = i
				break
			}
		}
		require.GreaterOrEqual(t, first, 0, "globex starved: %v", starts)
		require.Less(t, first, 3, "globex waited behind acme's burst: %v", starts)
		n := 0
		for _, tenant := range starts {
			if tenant == "globex" {
				n++
			}
		}
		require.GreaterOrEqual(t, n, 2, "round robin: %v", starts)
	})

	t.Run("TenantIsolation", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		for _, id := range []string{a.ID, b.ID} {
			_, err := tb.s.Task(tb.ctx, "globex", id)
			require.ErrorIs(t, err, core.ErrNotFound)
			_, err = tb.s.Cancel(tb.ctx, "globex", id)
			require.ErrorIs(t, err, core.ErrNotFound)
		}
		_, err := tb.s.Complete(tb.ctx, core.CompleteRequest{Tenant: "globex", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
		require.ErrorIs(t, err, core.ErrNotFound, "even with the right lease")
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "globex", TaskID: a.ID, Lease: a.Lease})
		require.ErrorIs(t, err, core.ErrNotFound)
		require.Equal(t, core.StateRunning, tb.task(t, "acme", a.ID).State)
		require.Equal(t, core.StateParked, tb.task(t, "acme", b.ID).State)

		// globex's mailbox named like acme's, and globex's audit, are empty.
		page, err := tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "globex", Recipient: "acme"})
		require.NoError(t, err)
		require.Empty(t, page.Messages)
		audit, err := tb.s.Audit(tb.ctx, core.AuditQuery{Tenant: "globex"})
		require.NoError(t, err)
		require.Empty(t, audit.Events)
		audit, err = tb.s.Audit(tb.ctx, core.AuditQuery{Tenant: "globex", TaskID: a.ID})
		require.NoError(t, err)
		require.Empty(t, audit.Events)
		audit, err = tb.s.Audit(tb.ctx, core.AuditQuery{Tenant: "acme"})
		require.NoError(t, err)
		require.Len(t, audit.Events, 2)
		page, err = tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme"})
		require.NoError(t, err)
		require.Len(t, page.Messages, 1)
		// globex's mailbox of the same name has no message: acme's cursor
		// is beyond its newest, and acme's mailbox is untouched.
		err = tb.s.Ack(tb.ctx, "globex", "acme", page.Next)
		require.ErrorIs(t, err, core.ErrInvalid)
		require.ErrorIs(t, err, core.ErrAckBeyondNewest)
		again, err := tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme"})
		require.NoError(t, err)
		require.Equal(t, page.Messages, again.Messages)
	})

	t.Run("MailboxAckAndPages", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 10, 5))
		var ids []string
		for range 5 {
			ids = append(ids, tb.submit(t, "acme", "p").ID)
		}
		page, err := tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme", Limit: 2})
		require.NoError(t, err)
		require.Len(t, page.Messages, 2)
		require.Equal(t, ids[:2], []string{page.Messages[0].TaskID, page.Messages[1].TaskID})
		page2, err := tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme", After: page.Next, Limit: 2})
		require.NoError(t, err)
		require.Equal(t, ids[2:4], []string{page2.Messages[0].TaskID, page2.Messages[1].TaskID})
		require.NoError(t, tb.s.Ack(tb.ctx, "acme", "acme", page2.Next))
		rest, err := tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme"})
		require.NoError(t, err)
		require.Len(t, rest.Messages, 1)
		require.Equal(t, ids[4], rest.Messages[0].TaskID)
		require.Equal(t, rest.Messages[0].Cursor, rest.Next)
		// An older ack does not bring acknowledged messages back.
		require.NoError(t, tb.s.Ack(tb.ctx, "acme", "acme", page.Next))
		rest, err = tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme"})
		require.NoError(t, err)
		require.Len(t, rest.Messages, 1)
		// An empty page keeps the cursor.
		empty, err := tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme", After: rest.Next})
		require.NoError(t, err)
		require.Empty(t, empty.Messages)
		require.Equal(t, rest.Next, empty.Next)
	})

	t.Run("MailboxLongPoll", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 5))
		type result struct {
			page core.MailboxPage
			err  error
		}
		done := make(chan result, 1)
		go func() {
			page, err := tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "worker", Wait: core.MaxMailboxWait})
			done <- result{page, err}
		}()
		// Messages for other mailboxes do not end the poll.
		tb.submit(t, "acme", "p")
		select {
		case r := <-done:
			t.Fatalf("long poll returned without a message: %+v %v", r.page, r.err)
		default:
		}
		res, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Recipient: "worker"})
		require.NoError(t, err)
		require.Equal(t, core.StateParked, res.Task.State)
		// Parking writes no message; the cancel's outcome is the first
		// message of the worker's mailbox.
		select {
		case r := <-done:
			t.Fatalf("long poll returned without a message: %+v %v", r.page, r.err)
		default:
		}
		_, err = tb.s.Cancel(tb.ctx, "acme", res.Task.ID)
		require.NoError(t, err)
		select {
		case r := <-done:
			require.NoError(t, r.err)
			require.Len(t, r.page.Messages, 1)
			require.Equal(t, res.Task.ID, r.page.Messages[0].TaskID)
			require.Equal(t, core.MessageType("cancelled"), r.page.Messages[0].Type)
		case <-time.After(core.MaxMailboxWait / 2):
			t.Fatal("long poll did not return when a message landed")
		}

		// With nothing to deliver, a short poll returns empty at its end.
		page, err := tb.s.Mailbox(tb.ctx, core.MailboxRequest{Tenant: "acme", Recipient: "nobody", Wait: 20 * time.Millisecond})
		require.NoError(t, err)
		require.Empty(t, page.Messages)
	})

	t.Run("AuditOneEventPerTransition", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, newBackend, poolCfg("p", 1, 1))
		a := tb.submit(t, "acme", "p")
		b := tb.submit(t, "acme", "p")
		_, err := tb.s.Submit(tb.ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
		require.ErrorIs(t, err, core.ErrPoolFull)
		tb.clock.Advance(time.Second)
		_, err = tb.s.Heartbeat(tb.ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease})
		require.NoError(t, err)
		tb.complete(t, a, core.StateFailed)
		tb.clock.Advance(time.Second)
		_, err = tb.s.Cancel(tb.ctx, "acme", b.ID)
		require.NoError(t, err)

		page, err := tb.s.Audit(tb.ctx, core.AuditQuery{Tenant: "acme", From: T0, To: T0.Add(time.Hour)})
		require.NoError(t, err)
		type ev struct {
			task     string
			typ      string
			from, to core.State
			at       time.Duration
		}
		var got []ev
		for _, e := range page.Events {
			require.Equal(t, "acme", e.Tenant)
			require.Equal(t, "p", e.Pool)
			name := map[string]string{a.ID: "a", b.ID: "b"}[e.TaskID]
			if name == "" {
				name = "c"
			}
			got = append(got, ev{name, e.Type, e.From, e.To, e.At.Sub(T0)})
		}
		require.Equal(t, []ev{
			{"a", core.EventSubmit, "", core.StateRunning, 0},
			{"b", core.EventSubmit, "", core.StateParked, 0},
			{"c", core.EventSubmit, "", core.StateRejected, 0},
			{"a", core.EventComplete, core.StateRunning, core.StateFailed, time.Second},
			{"b", core.EventStart, core.StateParked, core.StateRunning, time.Second},
			{"b", core.EventCancel, core.StateRunning, core.StateCancelled, 2 * time.Second},
		}, got)

		// Pages of two cover the same events, without gaps or repeats.
		var paged []core.Event
		q := core.AuditQuery{Tenant: "acme", From: T0, To: T0.Add(time.Hour), Limit: 2}
		for i := 0; ; i++ {
			require.Less(t, i, 10)
			p, err := tb.s.Audit(tb.ctx, q)
			require.NoError(t, err)
			paged = append(paged, p.Events...)
			if p.Next.IsZero() {
				break
			}
			q.After = p.Next
		}
		require.Equal(t, page.Events, paged)
		// Filters.
		p, err := tb.s.Audit(tb.ctx, core.AuditQuery{Tenant: "acme", From: T0, To: T0.Add(time.Hour), TaskID: b.ID})
		require.NoError(t, err)
		require.Len(t, p.Events, 3)
		p, err = tb.s.Audit(tb.ctx, core.AuditQuery{Tenant: "acme", From: T0, To: T0.Add(time.Hour), Pool: "other"})
		require.NoError(t, err)
		require.Empty(t, p.Events)
		p, err = tb.s.Audit(tb.ctx, core.AuditQuery{Tenant: "acme", From: T0.Add(time.Second), To: T0.Add(2 * time.Second)})
		require.NoError(t, err)
		require.Len(t, p.Events, 2)
	})

	t.Run("OutboxResend", func(t *testing.T) {
		t.Parallel()
		clock := core.NewStubClock(T0)
		inner := newBackend(t, clock)
		// The parking queue refuses every send: the parked task stays
		// flagged Unsent until the sweeper re-sends it.
		f := NewFaultInjector(inner, FaultConfig{Seed: 1, SendLost: 1})
		s, err := core.New(core.Config{Backend: f, Clock: clock, OutboxGrace: 30 * time.Second})
		require.NoError(t, err)
		ctx := t.Context()
		require.NoError(t, s.PutPool(ctx, poolCfg("p", 1, 5)))
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
		require.NoError(t, err)
		a := res.Task
		res, err = s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
		require.NoError(t, err)
		b := res.Task
		require.True(t, b.Unsent)
		ids, err := inner.Unsent(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, []string{b.ID}, ids)

		_, err = s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
		got, err := s.Task(ctx, "acme", b.ID)
		require.NoError(t, err)
		require.Equal(t, core.StateParked, got.State, "no queue message yet")

		f.SetConfig(FaultConfig{Seed: 1})
		st, err := s.Sweep(ctx)
		require.NoError(t, err)
		require.Zero(t, st.Resent, "within the outbox grace")
		clock.Advance(30 * time.Second)
		st, err = s.Sweep(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.Resent)
		require.Equal(t, 1, st.Started)
		got, err = s.Task(ctx, "acme", b.ID)
		require.NoError(t, err)
		require.Equal(t, core.StateRunning, got.State)
		require.False(t, got.Unsent)
		ids, err = inner.Unsent(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, ids)
	})

	t.Run("DuplicateDeliveries", func(t *testing.T) {
		t.Parallel()
		clock := core.NewStubClock(T0)
		inner := newBackend(t, clock)
		f := NewFaultInjector(inner, FaultConfig{Seed: 2, SendTwice: 1, ReceiveTwice: 1, DeleteFailsAfter: 1, SendFailsAfter: 0.5})
		s, err := core.New(core.Config{Backend: f, Clock: clock})
		require.NoError(t, err)
		ctx := t.Context()
		require.NoError(t, s.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: 1, MaxParked: 50, DefaultMaxWait: 24 * time.Hour, RunTimeout: 24 * time.Hour}))
		var ids []string
		for i := range 10 {
			res, err := s.Submit(ctx, core.SubmitRequest{Tenant: fmt.Sprint("t", i%2), Pool: "p"})
			require.NoError(t, err)
			ids = append(ids, res.Task.ID)
		}
		for range 12 {
			var running []core.Task
			for _, id := range ids {
				task, err := inner.Task(ctx, id)
				require.NoError(t, err)
				if task.State == core.StateRunning {
					running = append(running, task)
				}
			}
			require.LessOrEqual(t, len(running), 1)
			for _, task := range running {
				_, err := s.Complete(ctx, core.CompleteRequest{Tenant: task.Tenant, TaskID: task.ID, Lease: task.Lease, Status: core.StateSucceeded})
				require.NoError(t, err)
			}
			clock.Advance(time.Minute)
			if _, err := s.Sweep(ctx); err != nil {
				require.ErrorIs(t, err, ErrInjected, "only re-sends fail")
			}
		}
		for _, id := range ids {
			task, err := inner.Task(ctx, id)
			require.NoError(t, err)
			require.Equal(t, core.StateSucceeded, task.State)
			msgs := allMessages(t, ctx, inner, task.Tenant, task.Tenant)
			n := 0
			for _, m := range msgs {
				if m.TaskID == id {
					n++
				}
			}
			require.Equal(t, 2, n, "one started and one outcome message, whatever the duplicates")
		}
		require.Positive(t, f.Injected(), "faults were injected")
	})
}
