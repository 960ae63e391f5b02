package httpapitest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testWalkthrough is the README's curl walk-through: submit, the started
// message with the lease, complete, the outcome message, ack, audit.
func testWalkthrough(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("walk")
	r := acme.send(http.MethodPost, "/v1/pools/ct-flow/tasks", object{"recipient": rcpt, "payload": object{"job": "render", "frames": 3}})
	created := expectSubmitted(t, r, http.StatusCreated)
	require.True(t, strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json"), "content type %q", r.hdr.Get("Content-Type"))
	outer := rawObject(t, r)
	requireFields(t, outer, []string{"task"}, "task")
	requireFields(t, outer["task"].(map[string]any), taskFields,
		"id", "tenant", "pool", "recipient", "state", "payload", "submittedAt", "deadline", "startedAt", "lease", "leaseExpiresAt")
	require.NotEmpty(t, created.ID)
	require.Equal(t, "acme", created.Tenant)
	require.Equal(t, "ct-flow", created.Pool)
	require.Equal(t, rcpt, created.Recipient)
	require.Equal(t, "running", created.State)
	require.JSONEq(t, `{"job":"render","frames":3}`, string(created.Payload))
	require.NotEmpty(t, created.Lease)
	submitted := requireTime(t, created.SubmittedAt)
	require.True(t, requireTime(t, created.Deadline).After(submitted))
	started := requireTime(t, created.StartedAt)
	require.False(t, started.Before(submitted))
	require.True(t, requireTime(t, created.LeaseExpiresAt).After(started))

	// The started message carries the lease to the recipient.
	r = acme.get("/v1/mailbox/" + rcpt + q("wait", "5s"))
	page := expect[mailboxPage](t, r, http.StatusOK)
	require.Len(t, page.Messages, 1)
	msg := page.Messages[0]
	requireFields(t, rawObject(t, r), []string{"messages", "next"}, "messages", "next")
	requireFields(t, rawObject(t, r)["messages"].([]any)[0].(map[string]any), messageFields, "cursor", "taskId", "tenant", "pool", "type", "payload", "deadline", "lease", "leaseExpiresAt", "at")
	require.Equal(t, created.ID, msg.TaskID)
	require.Equal(t, "ct-flow", msg.Pool)
	require.Equal(t, "started", msg.Type)
	require.Equal(t, created.Lease, msg.Lease)
	// ... and what a worker needs to run the task.
	require.Equal(t, "acme", msg.Tenant)
	require.JSONEq(t, `{"job":"render","frames":3}`, string(msg.Payload))
	require.True(t, requireTime(t, msg.Deadline).Equal(requireTime(t, created.Deadline)))
	require.True(t, requireTime(t, msg.LeaseExpiresAt).Equal(requireTime(t, created.LeaseExpiresAt)))
	require.NotEmpty(t, msg.Cursor)
	require.Equal(t, msg.Cursor, page.Next)
	require.True(t, requireTime(t, msg.At).Equal(started))

	// Complete with the lease from the message.
	r = complete(acme, msg.TaskID, object{"lease": msg.Lease, "status": "succeeded", "result": object{"url": "s3://out/1"}})
	done := expectTask(t, r, http.StatusOK)
	requireFields(t, rawObject(t, r), taskFields,
		"id", "tenant", "pool", "recipient", "state", "payload", "submittedAt", "deadline", "startedAt", "endedAt", "result")
	require.Equal(t, created.ID, done.ID)
	require.Equal(t, "succeeded", done.State)
	require.JSONEq(t, `{"url":"s3://out/1"}`, string(done.Result))
	require.Empty(t, done.Lease, "the lease is shown only while the task runs")
	require.False(t, requireTime(t, done.EndedAt).Before(started))

	// The outcome message follows the started one.
	r = acme.get("/v1/mailbox/" + rcpt + q("after", msg.Cursor, "wait", "5s"))
	page = expect[mailboxPage](t, r, http.StatusOK)
	require.Len(t, page.Messages, 1)
	out := page.Messages[0]
	require.Equal(t, "succeeded", out.Type)
	require.Equal(t, created.ID, out.TaskID)
	require.JSONEq(t, `{"url":"s3://out/1"}`, string(out.Result))
	require.Empty(t, out.Lease)
	require.NotEmpty(t, out.Cursor)
	require.NotEqual(t, msg.Cursor, out.Cursor)

	// Ack both: the mailbox is empty from the start.
	r = acme.send(http.MethodPost, "/v1/mailbox/"+rcpt+"/ack", object{"upTo": out.Cursor})
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	require.Empty(t, expect[mailboxPage](t, acme.get("/v1/mailbox/"+rcpt), http.StatusOK).Messages)

	require.Equal(t, "succeeded", getTask(t, acme, created.ID).State)

	// The audit trail holds both transitions.
	r = acme.get("/v1/audit" + q("task", created.ID))
	requireFields(t, rawObject(t, r), []string{"events", "next"}, "events", "next")
	evs := expect[auditPage](t, r, http.StatusOK).Events
	require.Len(t, evs, 2)
	requireFields(t, rawObject(t, r)["events"].([]any)[0].(map[string]any), eventFields, "at", "tenant", "pool", "taskId", "type", "from", "to")
	require.Equal(t, event{At: evs[0].At, Tenant: "acme", Pool: "ct-flow", TaskID: created.ID, Type: "submit", From: "", To: "running"}, evs[0])
	require.Equal(t, "complete", evs[1].Type)
	require.Equal(t, "running", evs[1].From)
	require.Equal(t, "succeeded", evs[1].To)
	require.True(t, requireTime(t, evs[0].At).Equal(submitted))
	require.True(t, requireTime(t, evs[1].At).Equal(requireTime(t, done.EndedAt)))
}

// testParkAndWake: a task that finds the pool full parks, and starts when the
// running one completes.
func testParkAndWake(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("wake")
	a := submit(t, acme, "ct-wake", object{"recipient": rcpt}, http.StatusCreated)
	require.Equal(t, "running", a.State)
	r := acme.send(http.MethodPost, "/v1/pools/ct-wake/tasks", object{"recipient": rcpt})
	b := expectSubmitted(t, r, http.StatusCreated)
	require.Equal(t, "parked", b.State)
	require.Empty(t, b.Lease)
	require.Empty(t, b.StartedAt)
	requireFields(t, rawObject(t, r)["task"].(map[string]any), taskFields, "id", "state", "submittedAt", "deadline")
	require.NotContains(t, rawObject(t, r)["task"].(map[string]any), "lease")

	p := getPool(t, acme, "ct-wake")
	require.Equal(t, pool{Name: "ct-wake", Capacity: 1, Running: 1, Parked: 1, MaxParked: 5}, p)

	expectTask(t, complete(acme, a.ID, object{"lease": a.Lease, "status": "succeeded"}), http.StatusOK)
	m := awaitMessage(t, acme, rcpt, b.ID, "started")
	require.NotEmpty(t, m.Lease)
	got := getTask(t, acme, b.ID)
	require.Equal(t, "running", got.State)
	require.Equal(t, m.Lease, got.Lease)
	require.Equal(t, pool{Name: "ct-wake", Capacity: 1, Running: 1, Parked: 0, MaxParked: 5}, getPool(t, acme, "ct-wake"))

	evs := events(t, acme, "task", b.ID)
	require.Len(t, evs, 2)
	require.Equal(t, []string{"submit", "start"}, []string{evs[0].Type, evs[1].Type})
	require.Equal(t, "parked", evs[1].From)
	require.Equal(t, "running", evs[1].To)

	expectTask(t, complete(acme, b.ID, object{"lease": m.Lease, "status": "succeeded"}), http.StatusOK)
	require.Equal(t, pool{Name: "ct-wake", Capacity: 1, Running: 0, Parked: 0, MaxParked: 5}, getPool(t, acme, "ct-wake"))
}

// testPoolFull: past the parked depth, the submission is rejected with 429,
// Retry-After and the rejected task, whose outcome is also in the mailbox.
func testPoolFull(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("full")
	a := submit(t, acme, "ct-full", object{"recipient": rcpt}, http.StatusCreated)
	b := submit(t, acme, "ct-full", object{"recipient": rcpt}, http.StatusCreated)
	require.Equal(t, []string{"running", "parked"}, []string{a.State, b.State})

	r := acme.send(http.MethodPost, "/v1/pools/ct-full/tasks", object{"recipient": rcpt, "payload": 7})
	eb := requireError(t, r, http.StatusTooManyRequests, "pool_full", "")
	require.GreaterOrEqual(t, retryAfter(t, r), 1)
	require.NotNil(t, eb.Task, "the rejected task is in the body: %s", r.body)
	c := *eb.Task
	require.NotEmpty(t, c.ID)
	require.Equal(t, "rejected", c.State)
	require.Equal(t, "ct-full", c.Pool)
	require.JSONEq(t, `7`, string(c.Payload))
	requireTime(t, c.EndedAt)
	requireFields(t, rawObject(t, r)["task"].(map[string]any), taskFields, "id", "state", "endedAt")

	require.Equal(t, "rejected", getTask(t, acme, c.ID).State)
	awaitMessage(t, acme, rcpt, c.ID, "rejected")
	require.Equal(t, pool{Name: "ct-full", Capacity: 1, Running: 1, Parked: 1, MaxParked: 1}, getPool(t, acme, "ct-full"))
	evs := events(t, acme, "task", c.ID)
	require.Len(t, evs, 1)
	require.Equal(t, "rejected", evs[0].To)

	expectTask(t, cancel(acme, b.ID), http.StatusOK)
	expectTask(t, cancel(acme, a.ID), http.StatusOK)
}

// testIdempotency: the same key and body replays the task with 200; another
// body is 409; keys belong to a tenant.
func testIdempotency(t *testing.T, e env) {
	acme, globex := e.acme(t), e.globex(t)
	rcpt := e.recipient("keys")
	key := "order-" + e.run
	body := object{"key": key, "recipient": rcpt, "payload": object{"a": 1}, "runTimeout": "5m"}
	first := submit(t, acme, "ct-keys", body, http.StatusCreated)
	require.Equal(t, key, first.Key)
	again := submit(t, acme, "ct-keys", body, http.StatusOK)
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, first.Lease, again.Lease)
	require.Equal(t, first.SubmittedAt, again.SubmittedAt)

	other := object{"key": key, "recipient": rcpt, "payload": object{"a": 2}, "runTimeout": "5m"}
	requireError(t, acme.send(http.MethodPost, "/v1/pools/ct-keys/tasks", other), http.StatusConflict, "key_conflict", "")

	theirs := submit(t, globex, "ct-keys", body, http.StatusCreated)
	require.NotEqual(t, first.ID, theirs.ID)
	require.Equal(t, "globex", theirs.Tenant)

	// The replay started nothing: one started message, one submit event.
	require.Equal(t, []string{"started"}, typesFor(messages(t, acme, rcpt), first.ID))
	require.Len(t, events(t, acme, "task", first.ID), 1)
}

func testNotFound(t *testing.T, e env) {
	acme := e.acme(t)
	requireError(t, acme.send(http.MethodPost, "/v1/pools/ct-nope/tasks", object{}), http.StatusNotFound, "pool_not_found", "")
	requireError(t, acme.get("/v1/pools/ct-nope"), http.StatusNotFound, "pool_not_found", "")
	for _, path := range []string{"/v1/tasks/ffffffffffffffffffffffff", "/v1/tasks/no-such-task"} {
		requireError(t, acme.get(path), http.StatusNotFound, "not_found", "")
		requireError(t, acme.raw(http.MethodPost, path+"/cancel", ""), http.StatusNotFound, "not_found", "")
		requireError(t, acme.send(http.MethodPost, path+"/heartbeat", object{"lease": "x"}), http.StatusNotFound, "not_found", "")
		requireError(t, acme.send(http.MethodPost, path+"/complete", object{"lease": "x", "status": "failed"}), http.StatusNotFound, "not_found", "")
	}
}

// testHeartbeat: a heartbeat moves the lease end; a wrong lease is 409.
func testHeartbeat(t *testing.T, e env) {
	acme := e.acme(t)
	a := submit(t, acme, "ct-lease", object{"recipient": e.recipient("hb"), "runTimeout": "1m"}, http.StatusCreated)
	before := requireTime(t, a.LeaseExpiresAt)

	r := heartbeat(acme, a.ID, object{"lease": a.Lease, "extend": "10m"})
	requireFields(t, rawObject(t, r), []string{"leaseExpiresAt"}, "leaseExpiresAt")
	hb := expect[struct {
		LeaseExpiresAt string `json:"leaseExpiresAt"`
	}](t, r, http.StatusOK)
	ext := requireTime(t, hb.LeaseExpiresAt)
	require.True(t, ext.After(before.Add(8*time.Minute)), "extended to %s from %s", ext, before)
	require.True(t, requireTime(t, getTask(t, acme, a.ID).LeaseExpiresAt).Equal(ext))

	// Without extend the lease runs for the task's runTimeout again.
	r = heartbeat(acme, a.ID, object{"lease": a.Lease})
	hb = expect[struct {
		LeaseExpiresAt string `json:"leaseExpiresAt"`
	}](t, r, http.StatusOK)
	back := requireTime(t, hb.LeaseExpiresAt)
	require.True(t, back.Before(ext), "runTimeout 1m ends before the 10m extension")

	requireError(t, heartbeat(acme, a.ID, object{"lease": "not-the-lease"}), http.StatusConflict, "lease_lost", "")
	require.Equal(t, "running", getTask(t, acme, a.ID).State)
	expectTask(t, complete(acme, a.ID, object{"lease": a.Lease, "status": "succeeded"}), http.StatusOK)
	requireError(t, heartbeat(acme, a.ID, object{"lease": a.Lease}), http.StatusConflict, "lease_lost", "")
}

// testCompleteRepeat: a repeated completion is 200 again and delivers one
// outcome; a different one after it is 409 lease_lost.
func testCompleteRepeat(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("repeat")
	a := submit(t, acme, "ct-lease", object{"recipient": rcpt}, http.StatusCreated)
	body := object{"lease": a.Lease, "status": "failed", "error": "disk full"}
	first := expectTask(t, complete(acme, a.ID, body), http.StatusOK)
	require.Equal(t, "failed", first.State)
	require.Equal(t, "disk full", first.Error)
	second := expectTask(t, complete(acme, a.ID, body), http.StatusOK)
	require.Equal(t, first, second)
	requireError(t, complete(acme, a.ID, object{"lease": a.Lease, "status": "succeeded"}), http.StatusConflict, "lease_lost", "")
	requireError(t, complete(acme, a.ID, object{"lease": "other", "status": "failed"}), http.StatusConflict, "lease_lost", "")

	m := awaitMessage(t, acme, rcpt, a.ID, "failed")
	require.Equal(t, "disk full", m.Error)
	require.Equal(t, []string{"started", "failed"}, typesFor(messages(t, acme, rcpt), a.ID))
}

// testLeaseLost: once the lease has ended, heartbeat and complete are 409
// lease_lost and the task ends timed_out, with one outcome.
func testLeaseLost(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("lost")
	a := submit(t, acme, "ct-lease", object{"recipient": rcpt, "runTimeout": "300ms"}, http.StatusCreated)
	require.Equal(t, "running", a.State)
	waitPast(requireTime(t, a.LeaseExpiresAt))

	requireError(t, heartbeat(acme, a.ID, object{"lease": a.Lease}), http.StatusConflict, "lease_lost", "")
	requireError(t, complete(acme, a.ID, object{"lease": a.Lease, "status": "succeeded"}), http.StatusConflict, "lease_lost", "")
	got := getTask(t, acme, a.ID)
	require.Equal(t, "timed_out", got.State)
	require.Empty(t, got.Result)
	awaitMessage(t, acme, rcpt, a.ID, "timed_out")
	require.Equal(t, []string{"started", "timed_out"}, typesFor(messages(t, acme, rcpt), a.ID))
}

// testNoStartAfterDeadline: a parked task whose deadline passed is not
// started when a slot frees; it ends expired, with one outcome.
func testNoStartAfterDeadline(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("expire")
	a := submit(t, acme, "ct-expire", object{"recipient": rcpt}, http.StatusCreated)
	b := submit(t, acme, "ct-expire", object{"recipient": rcpt, "maxWait": "300ms"}, http.StatusCreated)
	require.Equal(t, "parked", b.State)
	deadline := requireTime(t, b.Deadline)
	require.True(t, deadline.Sub(requireTime(t, b.SubmittedAt)) == 300*time.Millisecond, "deadline %s", b.Deadline)
	waitPast(deadline)

	expectTask(t, complete(acme, a.ID, object{"lease": a.Lease, "status": "succeeded"}), http.StatusOK)
	awaitMessage(t, acme, rcpt, b.ID, "expired")
	got := getTask(t, acme, b.ID)
	require.Equal(t, "expired", got.State)
	require.Empty(t, got.StartedAt)
	require.Equal(t, []string{"expired"}, typesFor(messages(t, acme, rcpt), b.ID))
	p := getPool(t, acme, "ct-expire")
	require.Equal(t, 0, p.Parked)
	require.Equal(t, 0, p.Running)
}

// testDeadline: an absolute deadline is kept as given.
func testDeadline(t *testing.T, e env) {
	acme := e.acme(t)
	want := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	a := submit(t, acme, "ct-keys", object{"recipient": e.recipient("deadline"), "deadline": want.Format(time.RFC3339Nano)}, http.StatusCreated)
	require.True(t, requireTime(t, a.Deadline).Equal(want), "deadline %s, want %s", a.Deadline, want)
	// A non-UTC offset names the same instant.
	b := submit(t, acme, "ct-keys", object{"recipient": e.recipient("deadline"), "deadline": want.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)}, http.StatusCreated)
	require.True(t, requireTime(t, b.Deadline).Equal(want))
	expectTask(t, cancel(acme, a.ID), http.StatusOK)
	expectTask(t, cancel(acme, b.ID), http.StatusOK)
}

// testCancel: parked and running tasks cancel (a running one frees its
// slot); a repeat is 200; a finished task is 409 invalid_state.
func testCancel(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("cancel")
	a := submit(t, acme, "ct-cancel", object{"recipient": rcpt}, http.StatusCreated)
	b := submit(t, acme, "ct-cancel", object{"recipient": rcpt}, http.StatusCreated)
	require.Equal(t, []string{"running", "parked"}, []string{a.State, b.State})

	got := expectTask(t, cancel(acme, b.ID), http.StatusOK)
	require.Equal(t, "cancelled", got.State)
	requireTime(t, got.EndedAt)
	require.Equal(t, "cancelled", expectTask(t, cancel(acme, b.ID), http.StatusOK).State)
	require.Equal(t, pool{Name: "ct-cancel", Capacity: 1, Running: 1, Parked: 0, MaxParked: 5}, getPool(t, acme, "ct-cancel"))

	// A body, if any, must be an empty object.
	require.Equal(t, "cancelled", expectTask(t, acme.raw(http.MethodPost, "/v1/tasks/"+a.ID+"/cancel", "{}"), http.StatusOK).State)
	require.Equal(t, pool{Name: "ct-cancel", Capacity: 1, Running: 0, Parked: 0, MaxParked: 5}, getPool(t, acme, "ct-cancel"))
	requireError(t, complete(acme, a.ID, object{"lease": a.Lease, "status": "succeeded"}), http.StatusConflict, "lease_lost", "")
	requireError(t, heartbeat(acme, a.ID, object{"lease": a.Lease}), http.StatusConflict, "lease_lost", "")

	c := submit(t, acme, "ct-cancel", object{"recipient": rcpt}, http.StatusCreated)
	require.Equal(t, "running", c.State)
	expectTask(t, complete(acme, c.ID, object{"lease": c.Lease, "status": "succeeded"}), http.StatusOK)
	requireError(t, cancel(acme, c.ID), http.StatusConflict, "invalid_state", "")
	require.Equal(t, "succeeded", getTask(t, acme, c.ID).State)

	msgs := messages(t, acme, rcpt)
	require.Equal(t, []string{"started", "cancelled"}, typesFor(msgs, a.ID))
	require.Equal(t, []string{"cancelled"}, typesFor(msgs, b.ID))
	require.Equal(t, []string{"started", "succeeded"}, typesFor(msgs, c.ID))
}

// testSameBody: what counts as the same body for a key is the request as
// the pool resolves it: the payload's JSON value (not its spacing, key
// order or escapes), and maxWait and runTimeout given or left to the
// pool's defaults alike.
func testSameBody(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("same")
	path := "/v1/pools/ct-same/tasks"
	send := func(body string) response { return acme.raw(http.MethodPost, path, body) }
	key := func(name string) string { return `"key":"` + name + "-" + e.run + `","recipient":"` + rcpt + `"` }

	first := expectSubmitted(t, send(`{`+key("ws")+`,"payload":{"a":1,"b":[true,null,"x"]}}`), http.StatusCreated)
	for _, body := range []string{
		`{` + key("ws") + `,"payload":{"a": 1, "b": [ true , null , "x" ]}}`,
		`{` + key("ws") + `,"payload":{"b":[true,null,"\u0078"],"a":1}}`,
		`{` + key("ws") + `,"payload":` + "\n\t" + `{"b":[true,null,"x"],` + "\r\n" + `"a":1}` + "\n}",
		` { "payload" : { "b" : [ true, null, "x" ], "a" : 1 } , ` + key("ws") + ` } `,
	} {
		again := expectSubmitted(t, send(body), http.StatusOK)
		require.Equal(t, first.ID, again.ID, body)
	}
	requireError(t, send(`{`+key("ws")+`,"payload":{"a":2,"b":[true,null,"x"]}}`), http.StatusConflict, "key_conflict", "key")
	requireError(t, send(`{`+key("ws")+`,"payload":{"a":1.0,"b":[true,null,"x"]}}`), http.StatusConflict, "key_conflict", "key")
	requireError(t, send(`{`+key("ws")+`,"payload":{"a":1,"b":[true,"x",null]}}`), http.StatusConflict, "key_conflict", "key")

	// The pool's defaults (maxWait 1m, runTimeout 1m) named or not.
	def := expectSubmitted(t, send(`{`+key("defaults")+`}`), http.StatusCreated)
	for _, body := range []string{
		`{` + key("defaults") + `,"maxWait":"1m"}`,
		`{` + key("defaults") + `,"maxWait":"60s","runTimeout":"1m0s"}`,
		`{` + key("defaults") + `,"runTimeout":"60000ms","payload":null}`,
	} {
		again := expectSubmitted(t, send(body), http.StatusOK)
		require.Equal(t, def.ID, again.ID, body)
	}
	requireError(t, send(`{`+key("defaults")+`,"maxWait":"2m"}`), http.StatusConflict, "key_conflict", "key")
	requireError(t, send(`{`+key("defaults")+`,"runTimeout":"61s"}`), http.StatusConflict, "key_conflict", "key")
	requireError(t, send(`{`+key("defaults")+`,"payload":{}}`), http.StatusConflict, "key_conflict", "key")

	// Replays started nothing.
	require.Equal(t, []string{"started"}, typesFor(messages(t, acme, rcpt), first.ID))
	require.Equal(t, []string{"started"}, typesFor(messages(t, acme, rcpt), def.ID))
}
