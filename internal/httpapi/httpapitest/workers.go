package httpapitest

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// claimAnswer is the answer of a claim.
type claimAnswer struct {
	Tasks []task `json:"tasks"`
}

// completeNextAnswer is the answer of a completion with next.
type completeNextAnswer struct {
	Task task   `json:"task"`
	Next []task `json:"next"`
}

func claim(c caller, pool string, body any) response {
	c.t.Helper()
	return c.send(http.MethodPost, "/v1/pools/"+pool+"/claim", body)
}

// testRoles: a worker's token calls the worker routes only, a tenant's the
// others only; a refusal changes nothing.
func testRoles(t *testing.T, e env) {
	acme, w := e.acme(t), e.worker(t)
	requireError(t, w.send(http.MethodPost, "/v1/pools/ct-pull/tasks", object{}), http.StatusForbidden, "forbidden", "")
	for _, path := range []string{"/v1/mailbox/" + e.recipient("roles"), "/v1/audit", "/v1/pools", "/v1/pools/ct-pull", "/v1/tasks/0123456789abcdef01234567"} {
		requireError(t, w.get(path), http.StatusForbidden, "forbidden", "")
	}
	requireError(t, w.send(http.MethodPost, "/v1/mailbox/"+e.recipient("roles")+"/ack", object{"upTo": ""}), http.StatusForbidden, "forbidden", "")
	requireError(t, claim(acme, "ct-pull", object{}), http.StatusForbidden, "forbidden", "")
	// A worker outside its pools: its claim is refused, another pool's task
	// is not found.
	requireError(t, claim(w, "ct-flow", object{}), http.StatusForbidden, "forbidden", "")
	running := submit(t, acme, "ct-roles", object{"recipient": e.recipient("roles")}, http.StatusCreated)
	if running.State == "running" {
		requireError(t, complete(w, running.ID, object{"lease": running.Lease, "status": "succeeded"}), http.StatusNotFound, "not_found", "")
		requireError(t, heartbeat(w, running.ID, object{"lease": running.Lease}), http.StatusNotFound, "not_found", "")
		requireError(t, cancel(w, running.ID), http.StatusNotFound, "not_found", "")
		require.Equal(t, "running", getTask(t, acme, running.ID).State, "refusals change nothing")
		expect[task](t, complete(acme, running.ID, object{"lease": running.Lease, "status": "succeeded"}), http.StatusOK)
	}
	// A permit pool of the worker's has no claims.
	requireError(t, claim(w, "ct-wpermit", object{}), http.StatusConflict, "invalid_state", "")
	// Bad claims.
	requireError(t, claim(w, "ct-pull", object{"max": 11}), http.StatusBadRequest, "invalid_request", "max")
	requireError(t, claim(w, "ct-pull", object{"wait": "21s"}), http.StatusBadRequest, "invalid_request", "wait")
	requireError(t, claim(w, "ct-pull", object{"limit": 1}), http.StatusBadRequest, "invalid_request", "limit")
	requireError(t, claim(w, "ct-none", object{}), http.StatusForbidden, "forbidden", "")
}

// testClaims: a pull pool parks every submission until a worker claims it;
// the claim is the start, with the lease and payload; complete-and-next
// hands the slot to the next task in the same call.
func testClaims(t *testing.T, e env) {
	acme, globex, w := e.acme(t), e.globex(t), e.worker(t)
	rcpt := e.recipient("claims")
	var ids []string
	for i, c := range []caller{acme, globex, acme} {
		got := submit(t, c, "ct-pull", object{"recipient": rcpt, "payload": object{"n": i}}, http.StatusCreated)
		require.Equal(t, "parked", got.State, "a pull pool parks every submission")
		require.Empty(t, got.Lease)
		ids = append(ids, got.ID)
	}
	r := claim(w, "ct-pull", object{"max": 5})
	got := expect[claimAnswer](t, r, http.StatusOK)
	requireFields(t, rawObject(t, r), []string{"tasks"}, "tasks")
	require.Len(t, got.Tasks, 2, "no more than the pool's capacity")
	require.NotEqual(t, got.Tasks[0].Tenant, got.Tasks[1].Tenant, "fair between tenants")
	for _, tk := range got.Tasks {
		require.Equal(t, "running", tk.State)
		require.NotEmpty(t, tk.Lease)
		require.NotEmpty(t, tk.LeaseExpiresAt)
		require.NotEmpty(t, tk.Payload, "a claim carries the payload")
		require.Contains(t, ids, tk.ID)
		// Its tenant's read, with or without a wait, goes without the
		// lease: the worker holds it.
		owner, ok := map[string]caller{"acme": acme, "globex": globex}[tk.Tenant]
		require.True(t, ok, "tenant %s", tk.Tenant)
		for _, path := range []string{"/v1/tasks/" + tk.ID, "/v1/tasks/" + tk.ID + "?wait=1s"} {
			seen := expectTask(t, owner.get(path), http.StatusOK)
			require.Equal(t, "running", seen.State, path)
			require.Empty(t, seen.Lease, "%s: the worker holds the lease", path)
			require.NotEmpty(t, seen.LeaseExpiresAt, path)
		}
	}
	empty := expect[claimAnswer](t, claim(w, "ct-pull", object{}), http.StatusOK)
	require.Empty(t, empty.Tasks, "the pool is full")
	require.NotNil(t, empty.Tasks, "an empty list, not null")

	a, b := got.Tasks[0], got.Tasks[1]
	hb := expect[object](t, heartbeat(w, a.ID, object{"lease": a.Lease, "extend": "2m"}), http.StatusOK)
	require.Contains(t, hb, "leaseExpiresAt")

	// Complete-and-next: the last parked task starts for the worker in the
	// same call.
	r = complete(w, a.ID, object{"lease": a.Lease, "status": "succeeded", "result": object{"ok": true}, "next": object{"max": 2}})
	cn := expect[completeNextAnswer](t, r, http.StatusOK)
	requireFields(t, rawObject(t, r), []string{"task", "next"}, "task", "next")
	require.Equal(t, "succeeded", cn.Task.State)
	require.Len(t, cn.Next, 1)
	c := cn.Next[0]
	require.Equal(t, "running", c.State)
	require.NotEmpty(t, c.Lease)
	require.NotContains(t, []string{a.ID, b.ID}, c.ID)

	// Nothing waits now: next is empty. The worker cancels the other.
	cn = expect[completeNextAnswer](t, complete(w, c.ID, object{"lease": c.Lease, "status": "failed", "error": "boom", "next": object{}}), http.StatusOK)
	require.Equal(t, "failed", cn.Task.State)
	require.Empty(t, cn.Next)
	require.NotNil(t, cn.Next)
	require.Equal(t, "cancelled", expect[task](t, cancel(w, b.ID), http.StatusOK).State)

	// A tenant may not ask for next.
	requireError(t, complete(acme, b.ID, object{"lease": b.Lease, "status": "succeeded", "next": object{"max": 1}}), http.StatusBadRequest, "invalid_request", "next")

	// The recipients' mailboxes hold the starts, without the lease, and the
	// outcomes.
	for _, caller := range []caller{acme, globex} {
		page := expect[mailboxPage](t, caller.get("/v1/mailbox/"+rcpt), http.StatusOK)
		types := map[string][]string{}
		for _, m := range page.Messages {
			types[m.TaskID] = append(types[m.TaskID], m.Type)
			if m.Type == "started" {
				require.Empty(t, m.Lease, "the claimer holds the lease")
				require.NotEmpty(t, m.Payload)
			}
		}
		for _, ts := range types {
			require.Len(t, ts, 2)
			require.Equal(t, "started", ts[0])
		}
	}
	// The audit trail names the worker.
	page := expect[auditPage](t, acme.get("/v1/audit?pool=ct-pull"), http.StatusOK)
	claimed := 0
	for _, ev := range page.Events {
		if ev.Type == "start" {
			require.Equal(t, "claimed by "+Worker, ev.Detail)
			claimed++
		}
	}
	require.Positive(t, claimed)
}

// testWaitingClaim: a claim that waits takes the submission that comes.
func testWaitingClaim(t *testing.T, e env) {
	acme, w := e.acme(t), e.worker(t)
	done := make(chan response, 1)
	go func() { done <- claim(w, "ct-pull-wait", object{"wait": "20s"}) }()
	sub := submit(t, acme, "ct-pull-wait", object{"recipient": e.recipient("wait")}, http.StatusCreated)
	got := expect[claimAnswer](t, <-done, http.StatusOK)
	if len(got.Tasks) == 0 {
		// On a machine so slow that the wait ended first: the task is there
		// for the next claim.
		got = expect[claimAnswer](t, claim(w, "ct-pull-wait", object{}), http.StatusOK)
	}
	require.Len(t, got.Tasks, 1)
	require.Equal(t, sub.ID, got.Tasks[0].ID)
	expect[task](t, complete(w, sub.ID, object{"lease": got.Tasks[0].Lease, "status": "succeeded"}), http.StatusOK)
}

// testTaskWait: GET /v1/tasks/{id}?wait= answers when the parked task
// starts.
func testTaskWait(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("twait")
	a := submit(t, acme, "ct-twait", object{"recipient": rcpt}, http.StatusCreated)
	require.Equal(t, "running", a.State)
	b := submit(t, acme, "ct-twait", object{"recipient": rcpt}, http.StatusCreated)
	require.Equal(t, "parked", b.State)
	require.Equal(t, "parked", expect[task](t, acme.get("/v1/tasks/"+b.ID+"?wait=0s"), http.StatusOK).State)
	done := make(chan response, 1)
	go func() { done <- acme.get("/v1/tasks/" + b.ID + "?wait=20s") }()
	expect[task](t, complete(acme, a.ID, object{"lease": a.Lease, "status": "succeeded"}), http.StatusOK)
	got := expect[task](t, <-done, http.StatusOK)
	if got.State == "parked" {
		got = getTask(t, acme, b.ID) // on a machine so slow that the wait ended first
	}
	require.Equal(t, "running", got.State)
	require.NotEmpty(t, got.Lease)
	requireError(t, acme.get("/v1/tasks/"+b.ID+"?wait=21s"), http.StatusBadRequest, "invalid_request", "wait")
	requireError(t, e.globex(t).get("/v1/tasks/"+b.ID+"?wait=1s"), http.StatusNotFound, "not_found", "")
	expect[task](t, complete(acme, b.ID, object{"lease": got.Lease, "status": "succeeded"}), http.StatusOK)
}
