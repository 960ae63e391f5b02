package coretest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

func exercisePorts(t *testing.T, newBackend NewBackend) {
	t.Run("CommitAllOrNothing", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		pb.putPool(t, "p", 1, 1)
		// Fill the only slot and the only parked place.
		run := testTask("run", "acme", "p", core.StateRunning, T0)
		park := testTask("park", "acme", "p", core.StateParked, T0)
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true, Tasks: []core.TaskWrite{{Task: run}}}))
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Pool: "p", ParkedDelta: 1, NeedParkRoom: true, Tasks: []core.TaskWrite{{Task: park}}}))

		failing := map[string]struct {
			txn  func(id string) *core.Txn
			want error
		}{
			"NeedSlot": {func(id string) *core.Txn {
				return &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true}
			}, core.ErrNoCapacity},
			"FirstInLine": {func(id string) *core.Txn {
				return &core.Txn{Pool: "p", RunningDelta: 1, FirstInLine: true}
			}, core.ErrNoCapacity},
			"NeedParkRoom": {func(id string) *core.Txn {
				return &core.Txn{Pool: "p", ParkedDelta: 1, NeedParkRoom: true}
			}, core.ErrPoolFull},
			"Version": {func(id string) *core.Txn {
				stale := run
				stale.State = core.StateSucceeded
				return &core.Txn{Pool: "p", RunningDelta: -1, Tasks: []core.TaskWrite{{Task: stale, Expect: 7}}}
			}, core.ErrConflict},
			"Exists": {func(id string) *core.Txn {
				return &core.Txn{Pool: "p", RunningDelta: -1, Tasks: []core.TaskWrite{{Task: run}}}
			}, core.ErrConflict},
			"Key": {func(id string) *core.Txn {
				return &core.Txn{Pool: "p", ParkedDelta: -1, Key: &core.KeyRecord{Tenant: "acme", Key: "taken", TaskID: id}}
			}, core.ErrKeyExists},
		}
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Key: &core.KeyRecord{Tenant: "acme", Key: "taken", TaskID: "run"}}))

		for name, tc := range failing {
			id := "new-" + name
			txn := tc.txn(id)
			// Every failing transaction also carries a new task, a new key,
			// an event and a message: none of them may land.
			txn.Tasks = append(txn.Tasks, core.TaskWrite{Task: testTask(id, "acme", "p", core.StateParked, T0)})
			if txn.Key == nil {
				txn.Key = &core.KeyRecord{Tenant: "acme", Key: "key-" + name, TaskID: id}
			}
			txn.Events = []core.Event{{At: T0, Tenant: "acme", Pool: "p", TaskID: id, Type: core.EventSubmit, To: core.StateParked}}
			txn.Messages = []core.Message{{Tenant: "acme", Recipient: "box-" + name, TaskID: id, Pool: "p", Type: "rejected", At: T0}}
			err := pb.b.Commit(pb.ctx, txn)
			require.ErrorIs(t, err, tc.want, name)

			_, err = pb.b.Task(pb.ctx, id)
			require.ErrorIs(t, err, core.ErrNotFound, "%s: task written", name)
			if txn.Key.Key != "taken" {
				_, err = pb.b.Key(pb.ctx, "acme", txn.Key.Key)
				require.ErrorIs(t, err, core.ErrNotFound, "%s: key written", name)
			}
			require.Empty(t, allMessages(t, pb.ctx, pb.b, "acme", "box-"+name), "%s: message written", name)
			evs := allEvents(t, pb.ctx, pb.b, core.AuditQuery{Tenant: "acme", From: T0.Add(-time.Hour), To: T0.Add(time.Hour), TaskID: id})
			require.Empty(t, evs, "%s: event written", name)
			p := pb.pool(t, "p")
			require.Equal(t, 1, p.Running, "%s: running counter moved", name)
			require.Equal(t, 1, p.Parked, "%s: parked counter moved", name)
			got, err := pb.b.Task(pb.ctx, "run")
			require.NoError(t, err)
			require.Equal(t, core.StateRunning, got.State, "%s: existing task overwritten", name)
			require.Equal(t, int64(1), got.Version)
		}
	})

	t.Run("CommitWritesEverything", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		pb.putPool(t, "p", 2, 2)
		a := testTask("a", "acme", "p", core.StateRunning, T0)
		a.Payload = []byte(`{"x":1}`)
		err := pb.b.Commit(pb.ctx, &core.Txn{
			Pool: "p", RunningDelta: 1, NeedSlot: true, FirstInLine: true,
			Tasks:    []core.TaskWrite{{Task: a}},
			Key:      &core.KeyRecord{Tenant: "acme", Key: "k", TaskID: "a", BodyHash: "h"},
			Events:   []core.Event{{At: T0, Tenant: "acme", Pool: "p", TaskID: "a", Type: core.EventSubmit, To: core.StateRunning}},
			Messages: []core.Message{{Tenant: "acme", Recipient: "acme", TaskID: "a", Pool: "p", Type: core.MessageStarted, Lease: a.Lease, At: T0}},
		})
		require.NoError(t, err)
		got, err := pb.b.Task(pb.ctx, "a")
		require.NoError(t, err)
		require.Equal(t, int64(1), got.Version)
		require.Equal(t, a.Lease, got.Lease)
		require.JSONEq(t, `{"x":1}`, string(got.Payload))
		require.True(t, got.LeaseExpiresAt.Equal(a.LeaseExpiresAt))
		rec, err := pb.b.Key(pb.ctx, "acme", "k")
		require.NoError(t, err)
		require.Equal(t, core.KeyRecord{Tenant: "acme", Key: "k", TaskID: "a", BodyHash: "h"}, rec)
		require.Equal(t, 1, pb.pool(t, "p").Running)
		msgs := allMessages(t, pb.ctx, pb.b, "acme", "acme")
		require.Len(t, msgs, 1)
		require.Equal(t, a.Lease, msgs[0].Lease)
		require.NotZero(t, msgs[0].Cursor)
		evs := allEvents(t, pb.ctx, pb.b, core.AuditQuery{Tenant: "acme", From: T0, To: T0.Add(time.Second)})
		require.Len(t, evs, 1)
		require.Equal(t, core.StateRunning, evs[0].To)
	})

	t.Run("VersionCompareAndSet", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		put := func(task core.Task, expect int64) error {
			return pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: task, Expect: expect}}})
		}
		a := testTask("a", "acme", "p", core.StateParked, T0)
		require.ErrorIs(t, put(a, 3), core.ErrConflict, "expect 3 on a missing item")
		_, err := pb.b.Task(pb.ctx, "a")
		require.ErrorIs(t, err, core.ErrNotFound)
		require.NoError(t, put(a, 0))
		require.ErrorIs(t, put(a, 0), core.ErrConflict, "expect 0 on an existing item")
		a.Unsent = true
		require.NoError(t, put(a, 1))
		got, err := pb.b.Task(pb.ctx, "a")
		require.NoError(t, err)
		require.Equal(t, int64(2), got.Version)
		require.True(t, got.Unsent)
		a.Unsent = false
		require.ErrorIs(t, put(a, 1), core.ErrConflict, "stale version")
		require.ErrorIs(t, put(a, 3), core.ErrConflict, "future version")
		got, err = pb.b.Task(pb.ctx, "a")
		require.NoError(t, err)
		require.True(t, got.Unsent, "a failed write changed the item")
		require.NoError(t, put(a, 2))
		got, err = pb.b.Task(pb.ctx, "a")
		require.NoError(t, err)
		require.Equal(t, int64(3), got.Version)
	})

	t.Run("ExpectedState", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		a := testTask("a", "acme", "p", core.StateParked, T0)
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: a}}}))
		// Another write reached version 2: the task is cancelled.
		cancelled := a
		cancelled.State = core.StateCancelled
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: cancelled, Expect: 1}}}))
		// A start from a copy that foresaw version 2 parked.
		run := a
		run.State = core.StateRunning
		run.Lease = "l"
		run.StartedAt = T0
		run.LeaseExpiresAt = T0.Add(time.Minute)
		start := &core.Txn{Tasks: []core.TaskWrite{{Task: run, Expect: 2, ExpectState: core.StateParked}}}
		require.ErrorIs(t, pb.b.Commit(pb.ctx, start), core.ErrConflict, "version 2 is cancelled, not parked")
		got, err := pb.b.Task(pb.ctx, "a")
		require.NoError(t, err)
		require.Equal(t, core.StateCancelled, got.State)
		require.Equal(t, int64(2), got.Version)

		b := testTask("b", "acme", "p", core.StateParked, T0)
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: b}}}))
		run = b
		run.State = core.StateRunning
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: run, Expect: 1, ExpectState: core.StateParked}}}))
		got, err = pb.b.Task(pb.ctx, "b")
		require.NoError(t, err)
		require.Equal(t, core.StateRunning, got.State)
		require.Equal(t, int64(2), got.Version)
	})

	t.Run("KeyPutIfAbsent", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		_, err := pb.b.Key(pb.ctx, "acme", "k")
		require.ErrorIs(t, err, core.ErrNotFound)
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Key: &core.KeyRecord{Tenant: "acme", Key: "k", TaskID: "a", BodyHash: "1"}}))
		err = pb.b.Commit(pb.ctx, &core.Txn{Key: &core.KeyRecord{Tenant: "acme", Key: "k", TaskID: "b", BodyHash: "2"}})
		require.ErrorIs(t, err, core.ErrKeyExists)
		rec, err := pb.b.Key(pb.ctx, "acme", "k")
		require.NoError(t, err)
		require.Equal(t, "a", rec.TaskID)
		require.Equal(t, "1", rec.BodyHash)
		// Keys are per tenant.
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Key: &core.KeyRecord{Tenant: "globex", Key: "k", TaskID: "c"}}))
		rec, err = pb.b.Key(pb.ctx, "globex", "k")
		require.NoError(t, err)
		require.Equal(t, "c", rec.TaskID)
		_, err = pb.b.Key(pb.ctx, "globex", "other")
		require.ErrorIs(t, err, core.ErrNotFound)
	})

	t.Run("PoolConditions", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		pb.putPool(t, "p", 2, 1)
		commit := func(txn core.Txn) error { txn.Pool = "p"; return pb.b.Commit(pb.ctx, &txn) }

		require.NoError(t, commit(core.Txn{RunningDelta: 1, NeedSlot: true, FirstInLine: true}))
		require.NoError(t, commit(core.Txn{RunningDelta: 1, NeedSlot: true, FirstInLine: true}))
		require.ErrorIs(t, commit(core.Txn{RunningDelta: 1, NeedSlot: true}), core.ErrNoCapacity)
		require.NoError(t, commit(core.Txn{ParkedDelta: 1, NeedParkRoom: true}))
		require.ErrorIs(t, commit(core.Txn{ParkedDelta: 1, NeedParkRoom: true}), core.ErrPoolFull)
		require.NoError(t, commit(core.Txn{RunningDelta: -1}))
		// A slot is free, but a task is parked: only a start of parked
		// work (no FirstInLine) may take it.
		require.ErrorIs(t, commit(core.Txn{RunningDelta: 1, NeedSlot: true, FirstInLine: true}), core.ErrNoCapacity)
		require.NoError(t, commit(core.Txn{RunningDelta: 1, ParkedDelta: -1, NeedSlot: true}))
		p := pb.pool(t, "p")
		require.Equal(t, 2, p.Running)
		require.Equal(t, 0, p.Parked)
		require.NoError(t, commit(core.Txn{RunningDelta: -1}))
		require.NoError(t, commit(core.Txn{RunningDelta: 1, NeedSlot: true, FirstInLine: true}))

		_, err := pb.b.Pool(pb.ctx, "nope")
		require.ErrorIs(t, err, core.ErrPoolNotFound)
		err = pb.b.Commit(pb.ctx, &core.Txn{Pool: "nope", RunningDelta: 1, NeedSlot: true,
			Tasks: []core.TaskWrite{{Task: testTask("x", "acme", "nope", core.StateRunning, T0)}}})
		require.ErrorIs(t, err, core.ErrPoolNotFound)
		_, err = pb.b.Task(pb.ctx, "x")
		require.ErrorIs(t, err, core.ErrNotFound)
	})

	t.Run("PutPoolKeepsCounters", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		pb.putPool(t, "b", 3, 5)
		pb.putPool(t, "a", 1, 1)
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Pool: "b", RunningDelta: 3, ParkedDelta: 2}))
		pb.putPool(t, "b", 1, 9)
		p := pb.pool(t, "b")
		require.Equal(t, 1, p.Capacity)
		require.Equal(t, 9, p.MaxParked)
		require.Equal(t, 3, p.Running)
		require.Equal(t, 2, p.Parked)
		// Running above the lowered capacity: no slot until it drops below.
		require.ErrorIs(t, pb.b.Commit(pb.ctx, &core.Txn{Pool: "b", RunningDelta: 1, ParkedDelta: -1, NeedSlot: true}), core.ErrNoCapacity)
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Pool: "b", RunningDelta: -2}))
		require.ErrorIs(t, pb.b.Commit(pb.ctx, &core.Txn{Pool: "b", RunningDelta: 1, ParkedDelta: -1, NeedSlot: true}), core.ErrNoCapacity)
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Pool: "b", RunningDelta: -1}))
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Pool: "b", RunningDelta: 1, ParkedDelta: -1, NeedSlot: true}))

		ps, err := pb.b.Pools(pb.ctx)
		require.NoError(t, err)
		require.Len(t, ps, 2)
		require.Equal(t, "a", ps[0].Name)
		require.Equal(t, "b", ps[1].Name)
		require.Equal(t, 1, ps[1].Running)
		require.Equal(t, 1, ps[1].Parked)
	})

	t.Run("MailboxCursors", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		msg := func(tenant, recipient, task string) core.Message {
			return core.Message{Tenant: tenant, Recipient: recipient, TaskID: task, Pool: "p", Type: "succeeded", At: pb.clock.Now()}
		}
		var want []string
		for i := range 7 {
			id := fmt.Sprintf("t%d", i)
			txn := &core.Txn{Messages: []core.Message{msg("acme", "box", id), msg("acme", "other", id), msg("globex", "box", id)}}
			want = append(want, id)
			if i == 3 {
				// Two messages of one mailbox in one transaction.
				txn.Messages = append(txn.Messages, msg("acme", "box", id+"b"))
				want = append(want, id+"b")
			}
			require.NoError(t, pb.b.Commit(pb.ctx, txn))
			pb.clock.Advance(time.Millisecond)
		}
		all := allMessages(t, pb.ctx, pb.b, "acme", "box")
		require.Len(t, all, len(want))
		for i, m := range all {
			require.Equal(t, want[i], m.TaskID, "commit order")
			require.Equal(t, "acme", m.Tenant)
			require.Equal(t, "box", m.Recipient)
			if i > 0 {
				require.Greater(t, m.Cursor, all[i-1].Cursor, "cursors strictly increase")
			}
		}
		require.Len(t, allMessages(t, pb.ctx, pb.b, "globex", "box"), 7)
		require.Empty(t, allMessages(t, pb.ctx, pb.b, "initech", "box"))

		// after and limit.
		page, err := pb.b.Messages(pb.ctx, "acme", "box", all[2].Cursor, 3)
		require.NoError(t, err)
		require.Equal(t, all[3:6], page)
		page, err = pb.b.Messages(pb.ctx, "acme", "box", all[len(all)-1].Cursor, 10)
		require.NoError(t, err)
		require.Empty(t, page)

		// Ack hides messages up to and including upTo; it never moves back.
		require.NoError(t, pb.b.Ack(pb.ctx, "acme", "box", all[4].Cursor))
		page, err = pb.b.Messages(pb.ctx, "acme", "box", 0, 100)
		require.NoError(t, err)
		require.Equal(t, all[5:], page)
		require.NoError(t, pb.b.Ack(pb.ctx, "acme", "box", all[1].Cursor))
		page, err = pb.b.Messages(pb.ctx, "acme", "box", all[2].Cursor, 100)
		require.NoError(t, err)
		require.Equal(t, all[5:], page, "ack moved back")
		page, err = pb.b.Messages(pb.ctx, "acme", "box", all[6].Cursor, 100)
		require.NoError(t, err)
		require.Equal(t, all[7:], page)
		// Another mailbox of the tenant is not acknowledged.
		require.Len(t, allMessages(t, pb.ctx, pb.b, "acme", "other"), 7)
		// A cursor beyond the newest message is refused and changes nothing:
		// acknowledging it would hide messages not yet written.
		require.ErrorIs(t, pb.b.Ack(pb.ctx, "acme", "box", all[len(all)-1].Cursor+1), core.ErrAckBeyondNewest)
		require.ErrorIs(t, pb.b.Ack(pb.ctx, "acme", "nobody", all[0].Cursor), core.ErrAckBeyondNewest)
		page, err = pb.b.Messages(pb.ctx, "acme", "box", all[6].Cursor, 100)
		require.NoError(t, err)
		require.Equal(t, all[7:], page)

		// A message committed after the ack still arrives, after the rest.
		require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Messages: []core.Message{msg("acme", "box", "late")}}))
		page, err = pb.b.Messages(pb.ctx, "acme", "box", 0, 100)
		require.NoError(t, err)
		require.Len(t, page, len(all)-5+1)
		require.Equal(t, "late", page[len(page)-1].TaskID)
		require.Greater(t, page[len(page)-1].Cursor, all[len(all)-1].Cursor)
	})

	t.Run("AuditEvents", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		var want []core.Event
		for i := range 30 {
			at := T0.Add(time.Duration(i/3) * time.Second) // three events per instant
			pool := []string{"p", "q"}[i%2]
			task := fmt.Sprintf("t%d", i%5)
			e := core.Event{At: at, Tenant: "acme", Pool: pool, TaskID: task, Type: core.EventStart, From: core.StateParked, To: core.StateRunning, Detail: fmt.Sprint(i)}
			other := e
			other.Tenant = "globex"
			require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Events: []core.Event{e, other}}))
			want = append(want, e)
		}
		details := func(evs []core.Event) []string {
			out := make([]string, len(evs))
			for i, e := range evs {
				require.Equal(t, "acme", e.Tenant)
				out[i] = e.Detail
			}
			return out
		}
		filter := func(from, to time.Time, pool, task string) []string {
			var out []core.Event
			for _, e := range want {
				if !e.At.Before(from) && e.At.Before(to) && (pool == "" || e.Pool == pool) && (task == "" || e.TaskID == task) {
					out = append(out, e)
				}
			}
			return details(out)
		}
		cases := []struct {
			from, to   time.Time
			pool, task string
		}{
			{T0, T0.Add(time.Hour), "", ""},
			{T0.Add(2 * time.Second), T0.Add(5 * time.Second), "", ""},
			{T0.Add(2 * time.Second), T0.Add(2 * time.Second).Add(time.Nanosecond), "", ""},
			{T0, T0.Add(time.Hour), "q", ""},
			{T0, T0.Add(time.Hour), "", "t3"},
			{T0.Add(time.Second), T0.Add(8 * time.Second), "p", "t2"},
			{T0.Add(-time.Hour), T0, "", ""},
		}
		for _, c := range cases {
			for _, limit := range []int{1, 2, 7, 1000} {
				q := core.AuditQuery{Tenant: "acme", From: c.from, To: c.to, Pool: c.pool, TaskID: c.task, Limit: limit}
				got := allEvents(t, pb.ctx, pb.b, q)
				require.Equal(t, filter(c.from, c.to, c.pool, c.task), details(got), "%+v limit %d", c, limit)
				for i := 1; i < len(got); i++ {
					prev, cur := got[i-1], got[i]
					require.True(t, prev.At.Before(cur.At) || prev.At.Equal(cur.At) && prev.Seq < cur.Seq, "(At, Seq) order")
				}
			}
		}
		page, err := pb.b.Events(pb.ctx, core.AuditQuery{Tenant: "initech", From: T0, To: T0.Add(time.Hour), Limit: 10})
		require.NoError(t, err)
		require.Empty(t, page)
	})

	t.Run("PageBytes", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		// 40 messages with results of MaxResultBytes and 40 events with
		// details of 120 KiB: pages end by content, not by count.
		result := []byte(`"` + strings.Repeat("r", core.MaxResultBytes-2) + `"`)
		detail := strings.Repeat("d", 120<<10)
		const n = 40
		for i := range n {
			at := T0.Add(time.Duration(i) * time.Millisecond)
			id := fmt.Sprintf("t%02d", i)
			require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{
				Messages: []core.Message{{Tenant: "acme", Recipient: "box", TaskID: id, Pool: "p", Type: "succeeded", Result: result, At: at}},
				Events:   []core.Event{{At: at, Tenant: "acme", Pool: "p", TaskID: id, Type: core.EventComplete, From: core.StateRunning, To: core.StateSucceeded, Detail: detail}},
			}))
		}
		var msgs []core.Message
		var after core.Cursor
		for range n + 1 {
			page, err := pb.b.Messages(pb.ctx, "acme", "box", after, core.MaxPageLimit)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			total := 0
			for i := range page {
				total += core.MessageBytes(&page[i])
			}
			require.True(t, len(page) == 1 || total <= core.MaxPageBytes, "a page of %d messages holds %d bytes", len(page), total)
			require.Less(t, len(page), n, "the page ends by content")
			msgs = append(msgs, page...)
			after = page[len(page)-1].Cursor
		}
		require.Len(t, msgs, n)
		for i, m := range msgs {
			require.Equal(t, fmt.Sprintf("t%02d", i), m.TaskID, "nothing lost or repeated")
		}
		// A single message over the bound is a page of its own.
		page, err := pb.b.Messages(pb.ctx, "acme", "box", 0, 1)
		require.NoError(t, err)
		require.Len(t, page, 1)

		q := core.AuditQuery{Tenant: "acme", From: T0, To: T0.Add(time.Hour), Limit: core.MaxPageLimit}
		var evs []core.Event
		for range n + 1 {
			page, err := pb.b.Events(pb.ctx, q)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			total := 0
			for i := range page {
				total += core.EventBytes(&page[i])
			}
			require.LessOrEqual(t, total, core.MaxPageBytes)
			require.Less(t, len(page), n, "the page ends by content")
			evs = append(evs, page...)
			last := page[len(page)-1]
			q.After = core.AuditCursor{At: last.At, Seq: last.Seq}
		}
		require.Len(t, evs, n)
		for i, e := range evs {
			require.Equal(t, fmt.Sprintf("t%02d", i), e.TaskID, "nothing lost or repeated")
		}
	})

	t.Run("DueIndex", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		pb.putPool(t, "p", 10, 10)
		tasks := map[string]core.Task{}
		put := func(task core.Task) {
			old, ok := tasks[task.ID]
			require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: task, Expect: old.Version}}}), task.ID)
			if !ok {
				task.Version = 1
			} else {
				task.Version = old.Version + 1
			}
			tasks[task.ID] = task
		}
		due := func(at time.Duration, limit int) []string {
			ids, err := pb.b.Due(pb.ctx, T0.Add(at), limit)
			require.NoError(t, err)
			return ids
		}
		for i, d := range []time.Duration{3, 1, 2, 5} {
			task := testTask(fmt.Sprintf("p%d", i), "acme", "p", core.StateParked, T0)
			task.Deadline = T0.Add(d * time.Minute)
			put(task)
		}
		// p0: 3m, p1: 1m, p2: 2m, p3: 5m.
		require.Empty(t, due(0, 10))
		require.Equal(t, []string{"p1", "p2"}, due(2*time.Minute, 10), "at or before, soonest first")
		require.Equal(t, []string{"p1"}, due(time.Hour, 1), "limit")
		require.Equal(t, []string{"p1", "p2", "p0", "p3"}, due(time.Hour, 10))

		// p0 starts: its due time becomes its lease end.
		run := tasks["p0"]
		run.State = core.StateRunning
		run.StartedAt = T0
		run.Lease = "l"
		run.LeaseExpiresAt = T0.Add(30 * time.Second)
		put(run)
		require.Equal(t, []string{"p0", "p1", "p2", "p3"}, due(time.Hour, 10))
		require.Equal(t, []string{"p0"}, due(45*time.Second, 10))
		// Its lease is extended.
		run = tasks["p0"]
		run.LeaseExpiresAt = T0.Add(4 * time.Minute)
		put(run)
		require.Equal(t, []string{"p1", "p2", "p0", "p3"}, due(time.Hour, 10))
		// Terminal tasks leave the index.
		for _, id := range []string{"p0", "p1"} {
			end := tasks[id]
			end.State = core.StateSucceeded
			end.EndedAt = T0
			put(end)
		}
		require.Equal(t, []string{"p2", "p3"}, due(time.Hour, 10))
		require.Equal(t, []string{"p2", "p3"}, due(time.Hour, 10), "Due is a read")
		ended := tasks["p2"]
		ended.State = core.StateExpired
		put(ended)
		require.Equal(t, []string{"p3"}, due(time.Hour, 10))

		// A lease cut short and extended again returns to an earlier due
		// time: the task is still listed once.
		back := testTask("r", "acme", "p", core.StateRunning, T0)
		back.LeaseExpiresAt = T0.Add(6 * time.Minute)
		put(back)
		back = tasks["r"]
		back.LeaseExpiresAt = T0.Add(7 * time.Minute)
		put(back)
		back = tasks["r"]
		back.LeaseExpiresAt = T0.Add(6 * time.Minute)
		put(back)
		require.Equal(t, []string{"p3", "r"}, due(time.Hour, 10))
		require.Equal(t, []string{"p3", "r"}, due(time.Hour, 2))
	})

	t.Run("UnsentIndex", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		versions := map[string]int64{}
		put := func(id string, unsent bool, state core.State) {
			task := testTask(id, "acme", "p", state, T0)
			task.Unsent = unsent
			require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{Tasks: []core.TaskWrite{{Task: task, Expect: versions[id]}}}))
			versions[id]++
		}
		unsent := func(limit int) []string {
			ids, err := pb.b.Unsent(pb.ctx, limit)
			require.NoError(t, err)
			slices.Sort(ids)
			return ids
		}
		require.Empty(t, unsent(10))
		put("a", true, core.StateParked)
		put("b", true, core.StateParked)
		put("c", false, core.StateParked)
		require.Equal(t, []string{"a", "b"}, unsent(10))
		require.Len(t, unsent(1), 1)
		put("a", false, core.StateParked)
		require.Equal(t, []string{"b"}, unsent(10))
		put("b", false, core.StateCancelled)
		require.Empty(t, unsent(10))
		put("c", true, core.StateParked)
		require.Equal(t, []string{"c"}, unsent(10))
	})

	t.Run("QueueAtLeastOnce", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		// One tenant per message: a FIFO queue with a message group per
		// tenant may hold back a group while one of its messages is out.
		send := func(pool, id string) {
			require.NoError(t, pb.b.Send(pb.ctx, pool, core.Parked{TaskID: id, Tenant: "tenant-" + id, Deadline: T0.Add(time.Hour)}))
		}
		receive := func(pool string, n int) []core.Delivery {
			ds, err := pb.b.Receive(pb.ctx, pool, n)
			require.NoError(t, err)
			return ds
		}
		ids := func(ds []core.Delivery) []string {
			out := make([]string, len(ds))
			for i, d := range ds {
				out[i] = d.TaskID
			}
			slices.Sort(out)
			return out
		}
		require.Empty(t, receive("p", 10))
		send("p", "a")
		send("p", "b")
		send("p", "c")
		send("q", "other")

		ds := receive("p", 10)
		require.Equal(t, []string{"a", "b", "c"}, ids(ds))
		require.True(t, ds[0].Deadline.Equal(T0.Add(time.Hour)))
		require.Equal(t, "tenant-"+ds[0].TaskID, ds[0].Tenant)
		require.Empty(t, receive("p", 10), "received messages are hidden")
		byID := map[string]core.Delivery{}
		for _, d := range ds {
			byID[d.TaskID] = d
		}
		require.NoError(t, pb.b.Delete(pb.ctx, "p", byID["a"].Receipt))
		require.NoError(t, pb.b.Release(pb.ctx, "p", byID["b"].Receipt))
		again := receive("p", 10)
		require.Equal(t, []string{"b"}, ids(again), "released message is visible at once")
		// Past the visibility timeout, unhandled messages return; the
		// deleted one does not.
		pb.clock.Advance(maxVisibility + time.Minute)
		back := receive("p", 10)
		require.Equal(t, []string{"b", "c"}, ids(back))
		for _, d := range back {
			require.NoError(t, pb.b.Delete(pb.ctx, "p", d.Receipt))
		}
		// A stale receipt is harmless.
		require.NoError(t, pb.b.Delete(pb.ctx, "p", byID["c"].Receipt))
		pb.clock.Advance(maxVisibility + time.Minute)
		require.Empty(t, receive("p", 10))
		// Queues are per pool.
		require.Equal(t, []string{"other"}, ids(receive("q", 10)))
		// Max bounds a receive.
		for i := range 5 {
			send("r", fmt.Sprint(i))
		}
		require.Len(t, receive("r", 2), 2)
		require.Len(t, receive("r", 10), 3)
	})

	t.Run("QueueFairness", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		// A burst from acme, then globex and initech.
		for i := range 6 {
			require.NoError(t, pb.b.Send(pb.ctx, "p", core.Parked{TaskID: fmt.Sprintf("a%d", i), Tenant: "acme", Deadline: T0.Add(time.Hour)}))
		}
		for i := range 2 {
			require.NoError(t, pb.b.Send(pb.ctx, "p", core.Parked{TaskID: fmt.Sprintf("g%d", i), Tenant: "globex", Deadline: T0.Add(time.Hour)}))
			require.NoError(t, pb.b.Send(pb.ctx, "p", core.Parked{TaskID: fmt.Sprintf("i%d", i), Tenant: "initech", Deadline: T0.Add(time.Hour)}))
		}
		var order []string
		firstOf := map[string]int{}
		released := false
		for n := 0; n < 10; n++ {
			ds, err := pb.b.Receive(pb.ctx, "p", 1)
			require.NoError(t, err)
			require.Len(t, ds, 1, "receive %d", n)
			d := ds[0]
			if n == 2 && !released {
				// A released message keeps its place at the head of its tenant.
				released = true
				require.NoError(t, pb.b.Release(pb.ctx, "p", d.Receipt))
				n--
				continue
			}
			require.NoError(t, pb.b.Delete(pb.ctx, "p", d.Receipt))
			order = append(order, d.TaskID)
			if _, ok := firstOf[d.Tenant]; !ok {
				firstOf[d.Tenant] = len(order)
			}
		}
		// Per-tenant FIFO.
		for _, prefix := range []string{"a", "g", "i"} {
			var got []string
			for _, id := range order {
				if id[:1] == prefix {
					got = append(got, id)
				}
			}
			require.True(t, slices.IsSorted(got), "tenant %s out of order: %v", prefix, order)
		}
		// Round robin: the later tenants are not starved by the burst.
		require.LessOrEqual(t, firstOf["globex"], 3, "order %v", order)
		require.LessOrEqual(t, firstOf["initech"], 6, "order %v", order)
		ds, err := pb.b.Receive(pb.ctx, "p", 10)
		require.NoError(t, err)
		require.Empty(t, ds)
	})

	t.Run("QueueFIFOAfterVisibilityTimeout", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		for i := range 8 {
			require.NoError(t, pb.b.Send(pb.ctx, "p", core.Parked{TaskID: fmt.Sprintf("a%d", i), Tenant: "acme", Deadline: T0.Add(time.Hour)}))
		}
		ds, err := pb.b.Receive(pb.ctx, "p", 5)
		require.NoError(t, err)
		require.Len(t, ds, 5)
		pb.clock.Advance(maxVisibility + time.Minute)
		var order []string
		for range 8 {
			ds, err := pb.b.Receive(pb.ctx, "p", 1)
			require.NoError(t, err)
			require.Len(t, ds, 1)
			order = append(order, ds[0].TaskID)
			require.NoError(t, pb.b.Delete(pb.ctx, "p", ds[0].Receipt))
		}
		require.Equal(t, []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}, order, "timed-out messages return in their original order")
	})

	t.Run("Purge", func(t *testing.T) {
		t.Parallel()
		pb := setupPort(t, newBackend)
		for i := range 6 {
			at := T0.Add(time.Duration(i) * time.Hour)
			id := fmt.Sprint(i)
			require.NoError(t, pb.b.Commit(pb.ctx, &core.Txn{
				Events:   []core.Event{{At: at, Tenant: "acme", Pool: "p", TaskID: id, Type: core.EventSubmit, To: core.StateParked}},
				Messages: []core.Message{{Tenant: "acme", Recipient: "acme", TaskID: id, Pool: "p", Type: "expired", At: at}},
			}))
		}
		n, err := pb.b.Purge(pb.ctx, T0.Add(2*time.Hour), T0.Add(4*time.Hour))
		require.NoError(t, err)
		require.Equal(t, 2+4, n)
		var got []string
		for _, m := range allMessages(t, pb.ctx, pb.b, "acme", "acme") {
			got = append(got, m.TaskID)
		}
		require.Equal(t, []string{"2", "3", "4", "5"}, got)
		got = nil
		for _, e := range allEvents(t, pb.ctx, pb.b, core.AuditQuery{Tenant: "acme", From: T0.Add(-time.Hour), To: T0.Add(time.Hour * 24)}) {
			got = append(got, e.TaskID)
		}
		require.Equal(t, []string{"4", "5"}, got)
		n, err = pb.b.Purge(pb.ctx, T0.Add(2*time.Hour), T0.Add(4*time.Hour))
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// errorsIs reports whether err matches any of targets.
func errorsIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
