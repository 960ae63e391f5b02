package httpapitest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// maxPayload and maxResult are core.MaxPayloadBytes and core.MaxResultBytes,
// and maxPageBytes core.MaxPageBytes, the content bound of a mailbox or
// audit page, as the API documents them.
const (
	maxPayload   = 256 << 10
	maxResult    = 128 << 10
	maxPageBytes = 4 << 20
)

// testTenantIsolation: another tenant's task is 404 on every route, and its
// mailbox and audit events are not visible.
func testTenantIsolation(t *testing.T, e env) {
	acme, globex := e.acme(t), e.globex(t)
	rcpt := e.recipient("iso")
	a := submit(t, acme, "ct-tenants", object{"recipient": rcpt}, http.StatusCreated)

	theirs := requireError(t, globex.get("/v1/tasks/"+a.ID), http.StatusNotFound, "not_found", "")
	// Nothing tells another tenant's task from a task that does not exist.
	none := requireError(t, globex.get("/v1/tasks/ffffffffffffffffffffffff"), http.StatusNotFound, "not_found", "")
	require.Equal(t, strings.ReplaceAll(none.Error.Message, "ffffffffffffffffffffffff", a.ID), theirs.Error.Message)
	requireError(t, heartbeat(globex, a.ID, object{"lease": a.Lease}), http.StatusNotFound, "not_found", "")
	requireError(t, complete(globex, a.ID, object{"lease": a.Lease, "status": "succeeded"}), http.StatusNotFound, "not_found", "")
	requireError(t, cancel(globex, a.ID), http.StatusNotFound, "not_found", "")
	require.Empty(t, messages(t, globex, rcpt))
	require.Empty(t, events(t, globex, "task", a.ID))
	require.Empty(t, events(t, globex, "pool", "ct-tenants"))
	// globex's own mailbox of that name is empty: acme's cursor is beyond
	// its newest message, and acme's mailbox is left alone.
	requireError(t, globex.send(http.MethodPost, "/v1/mailbox/"+rcpt+"/ack", object{"upTo": awaitMessage(t, acme, rcpt, a.ID, "started").Cursor}), http.StatusBadRequest, "invalid_request", "upTo")

	// The tenant comes from the token, never from the body.
	requireError(t, globex.send(http.MethodPost, "/v1/pools/ct-tenants/tasks", object{"tenant": "acme"}), http.StatusBadRequest, "invalid_request", "tenant")

	got := getTask(t, acme, a.ID)
	require.Equal(t, "running", got.State)
	require.Equal(t, a.Lease, got.Lease)
	require.Equal(t, []string{"started"}, typesFor(messages(t, acme, rcpt), a.ID))
	evs := events(t, acme, "task", a.ID)
	require.Len(t, evs, 1)
	require.Equal(t, "acme", evs[0].Tenant)
	require.Equal(t, 1, getPool(t, acme, "ct-tenants").Running)
}

func testUnauthorized(t *testing.T, e env) {
	anon := e.as(t, "")
	wrong := e.as(t, "not-a-token-"+e.run)
	for _, c := range []caller{anon, wrong} {
		for _, rt := range []struct{ method, path, body string }{
			{http.MethodPost, "/v1/pools/ct-bad/tasks", "{}"},
			{http.MethodGet, "/v1/tasks/x", ""},
			{http.MethodPost, "/v1/tasks/x/heartbeat", `{"lease":"x"}`},
			{http.MethodPost, "/v1/tasks/x/complete", `{"lease":"x","status":"failed"}`},
			{http.MethodPost, "/v1/tasks/x/cancel", ""},
			{http.MethodGet, "/v1/mailbox/acme", ""},
			{http.MethodPost, "/v1/mailbox/acme/ack", `{"upTo":"AAAAAAAAAAE"}`},
			{http.MethodGet, "/v1/audit", ""},
			{http.MethodGet, "/v1/pools", ""},
			{http.MethodGet, "/v1/pools/ct-bad", ""},
		} {
			r := c.raw(rt.method, rt.path, rt.body)
			requireError(t, r, http.StatusUnauthorized, "unauthorized", "")
		}
	}
	// The scheme is case-insensitive, the token is not.
	r := e.as(t, "").raw(http.MethodGet, "/v1/pools", "", "Authorization", "bearer "+e.target.AcmeToken)
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	r = e.as(t, "").raw(http.MethodGet, "/v1/pools", "", "Authorization", "Bearer "+strings.ToUpper(e.target.AcmeToken)+"x")
	requireError(t, r, http.StatusUnauthorized, "unauthorized", "")
	r = e.as(t, "").raw(http.MethodGet, "/v1/pools", "", "Authorization", "Basic "+e.target.AcmeToken)
	requireError(t, r, http.StatusUnauthorized, "unauthorized", "")
}

func testRouting(t *testing.T, e env) {
	acme := e.acme(t)
	for _, path := range []string{"/v1/nope", "/v1/tasks", "/v1/tasks/x/y", "/v1/pools/ct-bad/tasks/x", "/v1/mailbox", "/v1/tasks//cancel", "/v1/pools/"} {
		requireError(t, acme.get(path), http.StatusNotFound, "not_found", "")
	}
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/tasks/x", "GET"},
		{http.MethodGet, "/v1/pools/ct-bad/tasks", "POST"},
		{http.MethodPut, "/v1/pools", "GET"},
		{http.MethodGet, "/v1/tasks/x/complete", "POST"},
		{http.MethodPost, "/v1/audit", "GET"},
		{http.MethodPost, "/v1/mailbox/x", "GET"},
		{http.MethodGet, "/v1/mailbox/x/ack", "POST"},
	} {
		r := acme.raw(c.method, c.path, "")
		requireError(t, r, http.StatusMethodNotAllowed, "method_not_allowed", "")
		require.Contains(t, r.hdr.Get("Allow"), c.allow, "%s %s", c.method, c.path)
	}
}

// snapshot is everything the bad-input cases might wrongly change.
type snapshot struct {
	task   task
	pool   pool
	msgs   []message
	events []event
}

func takeSnapshot(t *testing.T, c caller, id, rcpt string) snapshot {
	t.Helper()
	return snapshotOf(t, c, "ct-bad", id, rcpt)
}

// snapshotOf is takeSnapshot of task id in pool poolName.
func snapshotOf(t *testing.T, c caller, poolName, id, rcpt string) snapshot {
	t.Helper()
	return snapshot{
		task:   getTask(t, c, id),
		pool:   getPool(t, c, poolName),
		msgs:   messages(t, c, rcpt),
		events: events(t, c, "pool", poolName),
	}
}

// testBadInput: every malformed request is a 4xx naming the field, and none
// changes the task, the pool, the mailbox or the audit trail.
func testBadInput(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("bad")
	a := submit(t, acme, "ct-bad", object{"recipient": rcpt, "runTimeout": "10m"}, http.StatusCreated)
	require.Equal(t, "running", a.State)
	before := takeSnapshot(t, acme, a.ID, rcpt)
	require.Len(t, before.msgs, 1)
	require.Len(t, before.events, 1)

	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	str := func(n int) string { return strings.Repeat("k", n) }
	big := `"` + strings.Repeat("x", maxPayload) + `"` // maxPayload+2 bytes of JSON
	lease := a.Lease
	submitPath := "/v1/pools/ct-bad/tasks"
	hb := "/v1/tasks/" + a.ID + "/heartbeat"
	done := "/v1/tasks/" + a.ID + "/complete"
	cancelPath := "/v1/tasks/" + a.ID + "/cancel"
	ack := "/v1/mailbox/" + rcpt + "/ack"
	mbox := "/v1/mailbox/" + rcpt
	type badCase struct {
		method, path, body string
		code               int
		apiCode, field     string
	}
	bad := func(method, path, body, field string) badCase {
		return badCase{method, path, body, http.StatusBadRequest, "invalid_request", field}
	}
	cases := []badCase{
		bad("POST", submitPath, `{`, "body"),
		bad("POST", submitPath, `{"payload":}`, "body"),
		bad("POST", submitPath, `{"payload":{"a":1}`, "body"),
		bad("POST", submitPath, `[]`, "body"),
		bad("POST", submitPath, `"x"`, "body"),
		bad("POST", submitPath, `null`, "body"),
		bad("POST", submitPath, `{} {}`, "body"),
		bad("POST", submitPath, `{}x`, "body"),
		bad("POST", submitPath, `{"key":1}`, "key"),
		bad("POST", submitPath, `{"recipient":["a"]}`, "recipient"),
		bad("POST", submitPath, `{"maxWait":5}`, "maxWait"),
		bad("POST", submitPath, `{"deadline":true}`, "deadline"),
		bad("POST", submitPath, `{"foo":1}`, "foo"),
		bad("POST", submitPath, `{"Key":"x"}`, "Key"),
		bad("POST", submitPath, `{"key":"a","key":"b"}`, "key"),
		bad("POST", submitPath, `{"maxWait":"5"}`, "maxWait"),
		bad("POST", submitPath, `{"maxWait":"-1s"}`, "maxWait"),
		bad("POST", submitPath, `{"maxWait":"0s"}`, "maxWait"),
		bad("POST", submitPath, `{"maxWait":"soon"}`, "maxWait"),
		bad("POST", submitPath, `{"maxWait":"400h"}`, "maxWait"),
		bad("POST", submitPath, `{"runTimeout":"1x"}`, "runTimeout"),
		bad("POST", submitPath, `{"runTimeout":"-5m"}`, "runTimeout"),
		bad("POST", submitPath, `{"runTimeout":"999h"}`, "runTimeout"),
		bad("POST", submitPath, `{"deadline":"tomorrow"}`, "deadline"),
		bad("POST", submitPath, `{"deadline":"2020-01-01T00:00:00Z"}`, "deadline"),
		bad("POST", submitPath, `{"deadline":"2030-01-01 00:00:00"}`, "deadline"),
		bad("POST", submitPath, `{"deadline":"2099-01-01T00:00:00Z"}`, "deadline"),
		bad("POST", submitPath, `{"maxWait":"1m","deadline":"`+future+`"}`, "maxWait"),
		bad("POST", submitPath, `{"key":"`+str(300)+`"}`, "key"),
		bad("POST", submitPath, `{"recipient":"`+str(200)+`"}`, "recipient"),
		{"POST", submitPath, `{"payload":` + big + `}`, http.StatusRequestEntityTooLarge, "payload_too_large", "payload"},
		{"POST", submitPath, `{"payload":"` + strings.Repeat("x", 2*maxPayload) + `"}`, http.StatusRequestEntityTooLarge, "payload_too_large", ""},

		bad("POST", hb, ``, "lease"),
		bad("POST", hb, `{}`, "lease"),
		bad("POST", hb, `{"lease":5}`, "lease"),
		bad("POST", hb, `{"lease":"`+lease+`","extend":"x"}`, "extend"),
		bad("POST", hb, `{"lease":"`+lease+`","extend":"-1s"}`, "extend"),
		bad("POST", hb, `{"lease":"`+lease+`","extend":"0s"}`, "extend"),
		bad("POST", hb, `{"lease":"`+lease+`","extend":"1000h"}`, "extend"),
		bad("POST", hb, `{"lease":"`+lease+`","extra":1}`, "extra"),
		bad("POST", hb, `{"lease":"`+lease+`"} x`, "body"),

		bad("POST", done, `{"lease":"`+lease+`","status":"done"}`, "status"),
		bad("POST", done, `{"lease":"`+lease+`"}`, "status"),
		bad("POST", done, `{"status":"succeeded"}`, "lease"),
		bad("POST", done, `{"lease":"`+lease+`","status":"succeeded","result":{bad}}`, "body"),
		bad("POST", done, `{"lease":"`+lease+`","status":"succeeded","error":5}`, "error"),
		bad("POST", done, `{"lease":"`+lease+`","status":"succeeded","error":"`+str(5000)+`"}`, "error"),
		bad("POST", done, `{"lease":"`+lease+`","status":"succeeded","tenant":"globex"}`, "tenant"),
		{"POST", done, `{"lease":"` + lease + `","status":"succeeded","result":` + big + `}`, http.StatusRequestEntityTooLarge, "payload_too_large", "result"},
		{"POST", done, `{"lease":"` + lease + `","status":"succeeded","result":"` + strings.Repeat("r", maxResult-1) + `"}`, http.StatusRequestEntityTooLarge, "payload_too_large", "result"},

		bad("POST", cancelPath, `{"force":true}`, "force"),
		bad("POST", cancelPath, `[1]`, "body"),

		bad("POST", ack, `{}`, "upTo"),
		bad("POST", ack, `{"upTo":"!!"}`, "upTo"),
		bad("POST", ack, `{"upTo":5}`, "upTo"),
		bad("POST", ack, `{"upto":"x"}`, "upto"),

		bad("GET", mbox+"?after=!!", "", "after"),
		bad("GET", mbox+"?limit=0", "", "limit"),
		bad("GET", mbox+"?limit=-1", "", "limit"),
		bad("GET", mbox+"?limit=x", "", "limit"),
		bad("GET", mbox+"?limit=1001", "", "limit"),
		bad("GET", mbox+"?limit=1&limit=2", "", "limit"),
		bad("GET", mbox+"?wait=5", "", "wait"),
		bad("GET", mbox+"?wait=21s", "", "wait"),
		bad("GET", mbox+"?wait=-1s", "", "wait"),
		bad("GET", mbox+"?foo=1", "", "foo"),
		bad("GET", "/v1/mailbox/"+str(200), "", "recipient"),

		bad("GET", "/v1/audit?from=yesterday", "", "from"),
		bad("GET", "/v1/audit?to=x", "", "to"),
		bad("GET", "/v1/audit?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "", "from"),
		bad("GET", "/v1/audit?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "", "to"),
		bad("GET", "/v1/audit?after=!!", "", "after"),
		bad("GET", "/v1/audit?limit=x", "", "limit"),
		bad("GET", "/v1/audit?bogus=1", "", "bogus"),
	}
	for _, c := range cases {
		r := acme.raw(c.method, c.path, c.body)
		name := c.method + " " + c.path + " " + clipBody(c.body)
		require.Equal(t, c.code, r.code, "%s: body %s", name, r.body)
		e := requireError(t, r, c.code, c.apiCode, c.field)
		require.Nil(t, e.Task, name)
	}
	after := takeSnapshot(t, acme, a.ID, rcpt)
	require.Equal(t, before, after, "a rejected request changed state")
}

func clipBody(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func testPools(t *testing.T, e env) {
	acme := e.acme(t)
	r := acme.get("/v1/pools")
	requireFields(t, rawObject(t, r), []string{"pools"}, "pools")
	list := expect[struct {
		Pools []pool `json:"pools"`
	}](t, r, http.StatusOK)
	byName := map[string]pool{}
	for i, p := range list.Pools {
		byName[p.Name] = p
		requireFields(t, rawObject(t, r)["pools"].([]any)[i].(map[string]any), poolFields, poolFields...)
		if i > 0 {
			require.Less(t, list.Pools[i-1].Name, p.Name, "pools are listed by name")
		}
	}
	for _, want := range Pools {
		got, ok := byName[want.Name]
		require.True(t, ok, "pool %s is listed", want.Name)
		require.Equal(t, want.Capacity, got.Capacity, want.Name)
		require.Equal(t, want.MaxParked, got.MaxParked, want.Name)
	}
	r = acme.get("/v1/pools/ct-full")
	requireFields(t, rawObject(t, r), poolFields, poolFields...)
	p := expect[pool](t, r, http.StatusOK)
	require.Equal(t, "ct-full", p.Name)
	require.Equal(t, 1, p.Capacity)
	require.Equal(t, 1, p.MaxParked)
	// Pools are shared configuration: every tenant sees the same.
	require.Equal(t, byName["ct-bad"].Capacity, getPool(t, e.globex(t), "ct-bad").Capacity)
}

// testMailboxPages: limit and after page through the mailbox in cursor
// order; ack hides what it covers.
func testMailboxPages(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("mpages")
	var ids []string
	for range 3 {
		ids = append(ids, submit(t, acme, "ct-pages", object{"recipient": rcpt}, http.StatusCreated).ID)
	}
	var seen []message
	after := ""
	for range 3 {
		page := expect[mailboxPage](t, acme.get("/v1/mailbox/"+rcpt+q("after", after, "limit", "1")), http.StatusOK)
		require.Len(t, page.Messages, 1)
		require.Equal(t, page.Messages[0].Cursor, page.Next)
		seen = append(seen, page.Messages[0])
		after = page.Next
	}
	last := expect[mailboxPage](t, acme.get("/v1/mailbox/"+rcpt+q("after", after)), http.StatusOK)
	require.Empty(t, last.Messages)
	require.Equal(t, after, last.Next, "an empty page keeps the cursor")
	require.Equal(t, ids, []string{seen[0].TaskID, seen[1].TaskID, seen[2].TaskID})

	two := expect[mailboxPage](t, acme.get("/v1/mailbox/"+rcpt+q("limit", "2")), http.StatusOK)
	require.Equal(t, seen[:2], two.Messages)

	expect[object](t, acme.send(http.MethodPost, "/v1/mailbox/"+rcpt+"/ack", object{"upTo": seen[1].Cursor}), http.StatusOK)
	rest := expect[mailboxPage](t, acme.get("/v1/mailbox/"+rcpt), http.StatusOK)
	require.Equal(t, seen[2:], rest.Messages)
	// The acknowledged cursor never moves back.
	expect[object](t, acme.send(http.MethodPost, "/v1/mailbox/"+rcpt+"/ack", object{"upTo": seen[0].Cursor}), http.StatusOK)
	require.Equal(t, seen[2:], expect[mailboxPage](t, acme.get("/v1/mailbox/"+rcpt), http.StatusOK).Messages)
}

// testAuditPages: limit and after page through the events; from and to
// bound them.
func testAuditPages(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("apages")
	var tasks []task
	for range 3 {
		tasks = append(tasks, submit(t, acme, "ct-pages", object{"recipient": rcpt}, http.StatusCreated))
	}
	mine := func(evs []event) []string {
		var out []string
		for _, ev := range evs {
			for _, tk := range tasks {
				if ev.TaskID == tk.ID {
					out = append(out, ev.TaskID)
				}
			}
		}
		return out
	}
	first := requireTime(t, tasks[0].SubmittedAt)
	lastAt := requireTime(t, tasks[2].SubmittedAt)
	from := first.Format(time.RFC3339Nano)
	to := lastAt.Add(time.Nanosecond).Format(time.RFC3339Nano)

	var got []event
	after := ""
	for range 10 {
		page := expect[auditPage](t, acme.get("/v1/audit"+q("pool", "ct-pages", "from", from, "to", to, "limit", "1", "after", after)), http.StatusOK)
		require.LessOrEqual(t, len(page.Events), 1)
		got = append(got, page.Events...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	// MailboxPages submits to the same pool; count only this test's tasks.
	require.Equal(t, []string{tasks[0].ID, tasks[1].ID, tasks[2].ID}, mine(got))
	for _, ev := range got {
		require.Equal(t, "acme", ev.Tenant)
		require.Equal(t, "submit", ev.Type)
	}

	// to is exclusive, from inclusive.
	evs := events(t, acme, "pool", "ct-pages", "from", from, "to", lastAt.Format(time.RFC3339Nano))
	require.Equal(t, []string{tasks[0].ID, tasks[1].ID}, mine(evs))
	evs = events(t, acme, "pool", "ct-pages", "from", lastAt.Format(time.RFC3339Nano), "to", to)
	require.Equal(t, []string{tasks[2].ID}, mine(evs))
	evs = events(t, acme, "pool", "ct-pages", "to", first.Format(time.RFC3339Nano))
	require.Empty(t, mine(evs))
	// Filters combine.
	evs = events(t, acme, "pool", "ct-other", "task", tasks[0].ID)
	require.Empty(t, evs)
}

// testLongPoll: a waiting mailbox read returns as soon as a message lands,
// and an empty one returns after its wait.
func testLongPoll(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("poll")

	start := time.Now()
	page := expect[mailboxPage](t, acme.get("/v1/mailbox/"+rcpt+q("wait", "300ms")), http.StatusOK)
	require.Empty(t, page.Messages)
	require.Empty(t, page.Next)
	require.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "an empty long poll waits")
	require.NotNil(t, page.Messages, "messages is [] rather than null")

	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Another goroutine may not call t.FailNow: hand the response back.
		r, err := pollOnce(e.target, "/v1/mailbox/"+rcpt+q("wait", "15s"))
		done <- result{r, err}
	}()
	a := submit(t, acme, "ct-poll", object{"recipient": rcpt}, http.StatusCreated)
	start = time.Now()
	var res result
	select {
	case res = <-done:
	case <-time.After(requestTimeout):
		require.FailNow(t, "the long poll did not return")
	}
	require.NoError(t, res.err)
	require.Less(t, time.Since(start), 10*time.Second, "the long poll returned on the message, not at its end")
	page = expect[mailboxPage](t, res.r, http.StatusOK)
	require.Len(t, page.Messages, 1)
	require.Equal(t, a.ID, page.Messages[0].TaskID)
	require.Equal(t, "started", page.Messages[0].Type)
}

// pollOnce is a GET as acme that reports failures instead of failing.
func pollOnce(target Target, path string) (response, error) {
	return send(target, target.AcmeToken, http.MethodGet, path, "")
}

// send is a request that reports failures instead of failing, for use off
// the test's goroutine.
func send(target Target, token, method, path, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(target.BaseURL, "/")+path, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	cl := target.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	res, err := cl.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{code: res.StatusCode, hdr: res.Header, body: data}, nil
}

// testConcurrentSubmits: submissions racing for a pool never start more than
// its capacity nor park more than its depth; the rest are rejected.
func testConcurrentSubmits(t *testing.T, e env) {
	const n = 24
	rcpt := e.recipient("race")
	results := make(chan response, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		token := e.target.AcmeToken
		if i%2 == 1 {
			token = e.target.GlobexToken
		}
		wg.Go(func() {
			r, err := send(e.target, token, http.MethodPost, "/v1/pools/ct-race/tasks", `{"recipient":"`+rcpt+`"}`)
			if err != nil {
				errs <- err
				return
			}
			results <- r
		})
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	count := map[string]int{}
	for r := range results {
		switch r.code {
		case http.StatusCreated:
			count[expectSubmitted(t, r, http.StatusCreated).State]++
		case http.StatusTooManyRequests:
			e := requireError(t, r, http.StatusTooManyRequests, "pool_full", "")
			require.NotNil(t, e.Task)
			count[e.Task.State]++
		default:
			require.FailNow(t, "unexpected status", "%d: %s", r.code, r.body)
		}
	}
	require.Equal(t, map[string]int{"running": 2, "parked": 5, "rejected": n - 7}, count)
	require.Equal(t, pool{Name: "ct-race", Capacity: 2, Running: 2, Parked: 5, MaxParked: 5}, getPool(t, e.acme(t), "ct-race"))
}

// testMailboxPageBytes: a page is bounded by its content as well as by
// limit: a page of many large results ends early, and next goes on from
// there with nothing lost or repeated.
func testMailboxPageBytes(t *testing.T, e env) {
	const tasks = 40 // 40 results of 128 KiB: 5 MiB
	acme := e.acme(t)
	rcpt := e.recipient("big")
	result := `"` + strings.Repeat("r", maxResult-2) + `"`
	var ids []string
	for range tasks {
		a := submit(t, acme, "ct-big", object{"recipient": rcpt}, http.StatusCreated)
		require.Equal(t, "running", a.State)
		expectTask(t, acme.raw(http.MethodPost, "/v1/tasks/"+a.ID+"/complete", `{"lease":"`+a.Lease+`","status":"succeeded","result":`+result+`}`), http.StatusOK)
		ids = append(ids, a.ID)
	}
	resultBytes := func(ms []message) int {
		n := 0
		for _, m := range ms {
			n += len(m.Result)
		}
		return n
	}

	var all []message
	after := ""
	for range 2*tasks + 1 {
		r := acme.get("/v1/mailbox/" + rcpt + q("after", after, "limit", "1000"))
		page := expect[mailboxPage](t, r, http.StatusOK)
		if len(page.Messages) == 0 {
			require.Equal(t, after, page.Next, "an empty page keeps the cursor")
			break
		}
		if len(all) == 0 {
			require.Less(t, len(page.Messages), 2*tasks, "a page of %d large results ends early", tasks)
		}
		if len(page.Messages) > 1 {
			require.LessOrEqual(t, resultBytes(page.Messages), maxPageBytes, "a page of %d messages", len(page.Messages))
		}
		require.Less(t, len(r.body), maxPageBytes+64<<10, "the response of a page")
		require.Equal(t, page.Messages[len(page.Messages)-1].Cursor, page.Next)
		all = append(all, page.Messages...)
		after = page.Next
	}
	require.Len(t, all, 2*tasks, "every message, once")
	seen := map[string]bool{}
	for i, m := range all {
		require.False(t, seen[m.Cursor], "cursor %s repeated", m.Cursor)
		seen[m.Cursor] = true
		require.Equal(t, ids[i/2], m.TaskID, "message %d", i)
		if i%2 == 0 {
			require.Equal(t, "started", m.Type)
		} else {
			require.Equal(t, "succeeded", m.Type)
			require.Equal(t, result, string(m.Result))
		}
	}
}
