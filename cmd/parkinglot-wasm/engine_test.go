package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// out is a decoded reply.
type out struct {
	OK    json.RawMessage  `json:"ok"`
	Error *api.ErrorDetail `json:"error"`
	Task  *api.Task        `json:"task"`
	Notes *struct {
		Started []api.Task `json:"started"`
		Ended   []api.Task `json:"ended"`
		Mail    []string   `json:"mail"`
		Keep    *journal   `json:"keep"`
	} `json:"notes"`
}

func call(t *testing.T, e *engine, op string, args any) out {
	t.Helper()
	b, err := json.Marshal(args)
	require.NoError(t, err)
	var o out
	require.NoError(t, json.Unmarshal(e.Call(op, b), &o))
	return o
}

func ok[T any](t *testing.T, o out) T {
	t.Helper()
	require.Nil(t, o.Error)
	var v T
	require.NoError(t, json.Unmarshal(o.OK, &v))
	return v
}

func putPool(t *testing.T, e *engine, name string, capacity int) {
	t.Helper()
	ok[api.PoolList](t, call(t, e, "pools.put", map[string]any{"pools": []map[string]any{
		{"name": name, "capacity": capacity, "maxParked": 10, "defaultMaxWait": "1m", "runTimeout": "1m"},
	}}))
}

func TestCallRefusalsNameWhatIsWrong(t *testing.T) {
	t.Parallel()
	e := newEngine()
	putPool(t, e, "p", 1)
	for _, c := range []struct {
		op, args    string
		code, field string
	}{
		{"nope", `{}`, api.CodeInvalidRequest, "op"},
		{"submit", `{"pool": "p", "colour": 1}`, api.CodeInvalidRequest, "colour"},
		{"submit", `{"pool": 7}`, api.CodeInvalidRequest, "pool"},
		{"submit", `{"pool": "p"} {}`, api.CodeInvalidRequest, "body"},
		{"submit", `{"pool": "q"}`, api.CodePoolNotFound, ""},
		{"submit", `{"pool": "p", "maxWait": "-1s"}`, api.CodeInvalidRequest, "maxWait"},
		{"submit", fmt.Sprintf(`{"pool": "p", "payload": "%0300000d"}`, 0), api.CodePayloadTooLarge, "payload"},
		{"complete", `{"id": "x", "lease": "l", "status": "succeeded"}`, api.CodeNotFound, ""},
		{"mailbox", `{"recipient": "r", "after": "%%"}`, api.CodeInvalidRequest, "after"},
		{"pools.put", `{"pools": [{"name": "a", "capacity": 1, "defaultMaxWait": "1m"}]}`, api.CodeInvalidRequest, "pools[0].runTimeout"},
	} {
		var o out
		require.NoError(t, json.Unmarshal(e.Call(c.op, []byte(c.args)), &o), c.op+" "+c.args)
		require.NotNil(t, o.Error, c.op+" "+c.args)
		require.Equal(t, c.code, o.Error.Code, o.Error.Message)
		require.Equal(t, c.field, o.Error.Field, o.Error.Message)
	}
}

func TestPermitNotes(t *testing.T) {
	t.Parallel()
	e := newEngine()
	putPool(t, e, "p", 1)
	first := ok[api.TaskBody](t, call(t, e, "submit", map[string]any{"pool": "p", "watch": true})).Task
	require.Equal(t, "running", first.State)
	o := call(t, e, "submit", map[string]any{"pool": "p", "watch": true})
	parked := ok[api.TaskBody](t, o).Task
	require.Equal(t, "parked", parked.State)

	// The release hands the slot over: the watched task's start is noted
	// in the reply to the completion.
	o = call(t, e, "complete", map[string]any{"id": first.ID, "lease": first.Lease, "status": "succeeded"})
	require.Nil(t, o.Error)
	require.Len(t, o.Notes.Started, 1)
	require.Equal(t, parked.ID, o.Notes.Started[0].ID)
	require.NotEmpty(t, o.Notes.Started[0].Lease)
	require.Equal(t, []string{"default"}, o.Notes.Mail)
}

// TestRestoreKeepsCursors keeps what one engine journals and restores it
// into another, as a reload does: the same messages at the same cursors,
// the acknowledged ones hidden, the audit trail with its sequence numbers,
// and what is past retention left out as a prefix.
func TestRestoreKeepsCursors(t *testing.T) {
	t.Parallel()
	e := newEngine()
	ok[struct{}](t, call(t, e, "persist", nil))
	putPool(t, e, "p", 1)
	var kept journal
	keep := func(o out) {
		if o.Notes != nil && o.Notes.Keep != nil {
			kept.Messages = append(kept.Messages, o.Notes.Keep.Messages...)
			kept.Events = append(kept.Events, o.Notes.Keep.Events...)
			kept.Acks = append(kept.Acks, o.Notes.Keep.Acks...)
		}
	}
	for i := range 4 {
		o := call(t, e, "submit", map[string]any{"pool": "p", "recipient": fmt.Sprintf("r%d", i%2)})
		keep(o)
		task := ok[api.TaskBody](t, o).Task
		keep(call(t, e, "complete", map[string]any{"id": task.ID, "lease": task.Lease, "status": "succeeded"}))
	}
	page := ok[api.MailboxPage](t, call(t, e, "mailbox", map[string]any{"recipient": "r0"}))
	require.Len(t, page.Messages, 4)
	keep(call(t, e, "ack", map[string]any{"recipient": "r0", "upTo": page.Messages[0].Cursor}))
	require.Len(t, kept.Messages, 8)
	require.Len(t, kept.Events, 8)
	require.Len(t, kept.Acks, 1)

	// r1's first message is past retention.
	for i := range kept.Messages {
		if kept.Messages[i].Recipient == "r1" && kept.Messages[i].Cursor == 1 {
			kept.Messages[i].At = time.Now().Add(-core.DefaultMailboxRetention - time.Hour)
		}
	}
	r := newEngine()
	res := ok[restoreResult](t, call(t, r, "restore", kept))
	require.Equal(t, map[string]core.Cursor{"r1": 1}, res.DropMessages)
	require.Equal(t, 7, res.Messages)
	require.Equal(t, 8, res.Events)

	want := func(e *engine, recipient string) []api.Message {
		return ok[api.MailboxPage](t, call(t, e, "mailbox", map[string]any{"recipient": recipient})).Messages
	}
	require.Equal(t, want(e, "r0"), want(r, "r0"), "r0: the same messages at the same cursors, the acked one hidden")
	require.Equal(t, want(e, "r1")[1:], want(r, "r1"))
	require.Equal(t,
		ok[api.AuditPage](t, call(t, e, "audit", map[string]any{"limit": 3})),
		ok[api.AuditPage](t, call(t, r, "audit", map[string]any{"limit": 3})), "the audit trail and its cursor")

	// New messages continue the numbering.
	putPool(t, r, "p", 1)
	ok[api.TaskBody](t, call(t, r, "submit", map[string]any{"pool": "p", "recipient": "r1"}))
	msgs := want(r, "r1")
	last, err := core.ParseCursor(msgs[len(msgs)-1].Cursor)
	require.NoError(t, err)
	require.Equal(t, core.Cursor(5), last)

	// A retention given bounds what comes back: with one of a
	// nanosecond, every event is past it and dropped.
	res = ok[restoreResult](t, call(t, newEngine(), "restore", map[string]any{
		"messages": kept.Messages, "events": kept.Events, "acks": kept.Acks, "auditRetention": "1ns",
	}))
	require.Equal(t, 0, res.Events)
	require.Equal(t, kept.Events[len(kept.Events)-1].Seq, res.DropEvents)
	require.Equal(t, 7, res.Messages)
	require.Equal(t, "retention.mailbox", call(t, newEngine(), "restore", map[string]any{"mailboxRetention": "soon"}).Error.Field)

	// Restore must come first.
	require.Equal(t, api.CodeInvalidState, call(t, r, "restore", journal{}).Error.Code)
}

// TestCallSurvivesAPanic changes the ops table, so it does not run in
// parallel: the parallel tests wait until it has ended.
func TestCallSurvivesAPanic(t *testing.T) {
	e := newEngine()
	ops["test.panic"] = func(*engine, []byte) (any, error) { panic("boom") }
	defer delete(ops, "test.panic")
	o := call(t, e, "test.panic", nil)
	require.Equal(t, api.CodeInternal, o.Error.Code)
	require.Contains(t, o.Error.Message, "panic in test.panic: boom")
	putPool(t, e, "p", 1) // and the engine goes on
}

func TestBatchRunsCallsInOrderWithTheirNotes(t *testing.T) {
	t.Parallel()
	e := newEngine()
	putPool(t, e, "p", 1)
	o := call(t, e, "batch", map[string]any{"calls": []map[string]any{
		{"op": "submit", "args": map[string]any{"pool": "p"}},
		{"op": "submit", "args": map[string]any{"pool": "p", "watch": true}},
		{"op": "submit", "args": map[string]any{"pool": "nope"}},
		{"op": "batch", "args": map[string]any{}},
	}})
	var res struct {
		Replies []out `json:"replies"`
	}
	require.Nil(t, o.Error)
	require.NoError(t, json.Unmarshal(o.OK, &res))
	require.Len(t, res.Replies, 4)
	first := ok[api.TaskBody](t, res.Replies[0]).Task
	second := ok[api.TaskBody](t, res.Replies[1]).Task
	require.Equal(t, []string{"running", "parked"}, []string{first.State, second.State})
	require.Equal(t, api.CodePoolNotFound, res.Replies[2].Error.Code)
	require.Equal(t, "op", res.Replies[3].Error.Field)
	require.Nil(t, res.Replies[0].Notes, "notes come with the batch")
	require.Equal(t, []string{"default"}, o.Notes.Mail)

	// The watched task's start, caused by a later call of a batch, is
	// noted with that batch.
	o = call(t, e, "batch", map[string]any{"calls": []map[string]any{
		{"op": "complete", "args": map[string]any{"id": first.ID, "lease": first.Lease, "status": "succeeded"}},
	}})
	require.Len(t, o.Notes.Started, 1)
	require.Equal(t, second.ID, o.Notes.Started[0].ID)
}
