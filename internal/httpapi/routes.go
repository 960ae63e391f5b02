package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// submit serves POST /v1/pools/{pool}/tasks.
func (h *handler) submit(w http.ResponseWriter, r *http.Request, id Identity, p Params) {
	tenant := id.Tenant
	var body api.SubmitRequest
	if err := decodeBody(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := submitRequest(tenant, p["pool"], body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.s.Submit(r.Context(), req)
	if errors.Is(err, core.ErrPoolFull) && res.Task.ID != "" {
		t := api.FromTask(&res.Task)
		w.Header().Set("Retry-After", retryAfterSeconds)
		w.Header().Set("Location", taskPath(t.ID))
		writeJSON(w, http.StatusTooManyRequests, api.Error{
			Error: api.ErrorDetail{Code: api.CodePoolFull, Message: fmt.Sprintf("pool %s: the parked depth is full; the task was rejected", req.Pool)},
			Task:  &t,
		})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	code := http.StatusCreated
	if res.Replayed {
		code = http.StatusOK
	}
	w.Header().Set("Location", taskPath(res.Task.ID))
	writeJSON(w, code, api.TaskBody{Task: api.FromTask(&res.Task)})
}

// submitRequest turns a submit body into core's request. Sizes are checked
// here so that an oversized payload is 413 rather than 400.
func submitRequest(tenant, pool string, b api.SubmitRequest) (core.SubmitRequest, error) {
	req := core.SubmitRequest{Tenant: tenant, Pool: pool, Key: b.Key, Recipient: b.Recipient, Payload: rawJSON(b.Payload)}
	if len(req.Payload) > core.MaxPayloadBytes {
		return req, &tooLargeError{field: "payload", msg: fmt.Sprintf("payload must be at most %d bytes, got %d", core.MaxPayloadBytes, len(req.Payload))}
	}
	var err error
	if req.MaxWait, err = optDuration("maxWait", b.MaxWait); err != nil {
		return req, err
	}
	if req.Deadline, err = optTime("deadline", b.Deadline); err != nil {
		return req, err
	}
	if req.RunTimeout, err = optDuration("runTimeout", b.RunTimeout); err != nil {
		return req, err
	}
	return req, nil
}

// task serves GET /v1/tasks/{id}?wait=: with wait, it answers when the
// task is no longer parked, or when the wait runs out.
func (h *handler) task(w http.ResponseWriter, r *http.Request, id Identity, p Params) {
	q, err := parseQuery(r, "wait")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	t, err := h.s.WaitTask(r.Context(), id.Tenant, p["id"], wait)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.FromTask(&t))
}

// heartbeat serves POST /v1/tasks/{id}/heartbeat.
func (h *handler) heartbeat(w http.ResponseWriter, r *http.Request, id Identity, p Params) {
	var body api.HeartbeatRequest
	if err := decodeBody(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	ext, err := optDuration("extend", body.Extend)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	until, err := h.s.Heartbeat(r.Context(), core.HeartbeatRequest{Tenant: id.Tenant, Worker: id.Worker, TaskID: p["id"], Lease: body.Lease, Extend: ext})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.HeartbeatResponse{LeaseExpiresAt: until.UTC()})
}

// complete serves POST /v1/tasks/{id}/complete. With "next", a worker of a
// pull pool asks for its next tasks in the same call, and the answer is
// {"task", "next"} rather than the bare task.
func (h *handler) complete(w http.ResponseWriter, r *http.Request, id Identity, p Params) {
	var body api.CompleteRequest
	if err := decodeBody(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	req := core.CompleteRequest{
		Tenant: id.Tenant, Worker: id.Worker, TaskID: p["id"], Lease: body.Lease,
		Status: core.State(body.Status), Result: rawJSON(body.Result), Error: body.Error,
	}
	if len(req.Result) > core.MaxResultBytes {
		h.fail(w, r, &tooLargeError{field: "result", msg: fmt.Sprintf("result must be at most %d bytes, got %d", core.MaxResultBytes, len(req.Result))})
		return
	}
	if body.Next == nil {
		t, err := h.s.Complete(r.Context(), req)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.FromTask(&t))
		return
	}
	req.Next = body.Next.Max
	if req.Next == 0 {
		req.Next = 1
	}
	t, next, err := h.s.CompleteNext(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.CompleteNextResponse{Task: api.FromTask(&t), Next: fromTasks(next)})
}

// claim serves POST /v1/pools/{pool}/claim.
func (h *handler) claim(w http.ResponseWriter, r *http.Request, id Identity, p Params) {
	var body api.ClaimRequest
	if err := decodeBody(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	wait, err := parseWait(body.Wait)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tasks, err := h.s.Claim(r.Context(), core.ClaimRequest{Worker: *id.Worker, Pool: p["pool"], Max: body.Max, Wait: wait})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ClaimResponse{Tasks: fromTasks(tasks)})
}

// fromTasks converts core tasks, as an empty list rather than null.
func fromTasks(ts []core.Task) []api.Task {
	out := make([]api.Task, len(ts))
	for i := range ts {
		out[i] = api.FromTask(&ts[i])
	}
	return out
}

// cancel serves POST /v1/tasks/{id}/cancel. The body, if any, must be {}.
func (h *handler) cancel(w http.ResponseWriter, r *http.Request, id Identity, p Params) {
	var body struct{}
	if err := decodeBody(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	var t core.Task
	var err error
	if id.Worker != nil {
		t, err = h.s.CancelByWorker(r.Context(), *id.Worker, p["id"])
	} else {
		t, err = h.s.Cancel(r.Context(), id.Tenant, p["id"])
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.FromTask(&t))
}

// mailbox serves GET /v1/mailbox/{recipient}?after=&limit=&wait=.
func (h *handler) mailbox(w http.ResponseWriter, r *http.Request, id Identity, p Params) {
	tenant := id.Tenant
	req, err := mailboxRequest(r, tenant, p["recipient"])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.s.Mailbox(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.MailboxPage{Messages: make([]api.Message, len(page.Messages)), Next: page.Next.String()}
	for i := range page.Messages {
		out.Messages[i] = api.FromMessage(&page.Messages[i])
	}
	writeJSON(w, http.StatusOK, out)
}

func mailboxRequest(r *http.Request, tenant, recipient string) (core.MailboxRequest, error) {
	req := core.MailboxRequest{Tenant: tenant, Recipient: recipient}
	q, err := parseQuery(r, "after", "limit", "wait")
	if err != nil {
		return req, err
	}
	if req.After, err = core.ParseCursor(q.Get("after")); err != nil {
		return req, renameField(err, "after")
	}
	if req.Limit, err = parseLimit(q.Get("limit")); err != nil {
		return req, err
	}
	if req.Wait, err = parseWait(q.Get("wait")); err != nil {
		return req, err
	}
	return req, nil
}

// ack serves POST /v1/mailbox/{recipient}/ack. It answers with the cursor
// acknowledged.
func (h *handler) ack(w http.ResponseWriter, r *http.Request, id Identity, p Params) {
	tenant := id.Tenant
	var body api.AckRequest
	if err := decodeBody(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	upTo, err := core.ParseCursor(body.UpTo)
	if err != nil {
		h.fail(w, r, renameField(err, "upTo"))
		return
	}
	if err := h.s.Ack(r.Context(), tenant, p["recipient"], upTo); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.AckRequest{UpTo: upTo.String()})
}

// audit serves GET /v1/audit?from=&to=&pool=&task=&after=&limit=.
func (h *handler) audit(w http.ResponseWriter, r *http.Request, id Identity, _ Params) {
	tenant := id.Tenant
	q, err := auditQuery(r, tenant)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.s.Audit(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.AuditPage{Events: make([]api.Event, len(page.Events)), Next: page.Next.String()}
	for i := range page.Events {
		out.Events[i] = api.FromEvent(&page.Events[i])
	}
	writeJSON(w, http.StatusOK, out)
}

func auditQuery(r *http.Request, tenant string) (core.AuditQuery, error) {
	aq := core.AuditQuery{Tenant: tenant}
	q, err := parseQuery(r, "from", "to", "pool", "task", "after", "limit")
	if err != nil {
		return aq, err
	}
	if aq.From, err = optTime("from", q.Get("from")); err != nil {
		return aq, err
	}
	if aq.To, err = optTime("to", q.Get("to")); err != nil {
		return aq, err
	}
	if aq.After, err = core.ParseAuditCursor(q.Get("after")); err != nil {
		return aq, renameField(err, "after")
	}
	if aq.Limit, err = parseLimit(q.Get("limit")); err != nil {
		return aq, err
	}
	aq.Pool = q.Get("pool")
	aq.TaskID = q.Get("task")
	return aq, nil
}

// pools serves GET /v1/pools.
func (h *handler) pools(w http.ResponseWriter, r *http.Request, _ Identity, _ Params) {
	if _, err := parseQuery(r); err != nil {
		h.fail(w, r, err)
		return
	}
	ps, err := h.s.Pools(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := api.PoolList{Pools: make([]api.Pool, len(ps))}
	for i, p := range ps {
		out.Pools[i] = api.FromPool(p)
	}
	writeJSON(w, http.StatusOK, out)
}

// pool serves GET /v1/pools/{pool}.
func (h *handler) pool(w http.ResponseWriter, r *http.Request, _ Identity, p Params) {
	if _, err := parseQuery(r); err != nil {
		h.fail(w, r, err)
		return
	}
	ps, err := h.s.Pool(r.Context(), p["pool"])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.FromPool(ps))
}

func taskPath(id string) string { return "/v1/tasks/" + url.PathEscape(id) }
