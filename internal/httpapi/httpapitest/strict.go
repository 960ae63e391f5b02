package httpapitest

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// strictCase is a request that must be refused with code, apiCode and
// field ("" for any field) and change nothing.
type strictCase struct {
	method, path, body string
	code               int
	apiCode, field     string
}

func invalid(method, path, body, field string) strictCase {
	return strictCase{method, path, body, http.StatusBadRequest, "invalid_request", field}
}

// requireRefused sends each case as c (a path with an invalid escape is
// sent as it is) and checks the error it gets.
func requireRefused(t *testing.T, c caller, cases []strictCase) {
	t.Helper()
	for _, k := range cases {
		r := c.rawURI(k.method, k.path, k.body)
		name := k.method + " " + k.path + " " + clipBody(k.body)
		require.Equal(t, k.code, r.code, "%s: body %s", name, r.body)
		e := requireError(t, r, k.code, k.apiCode, k.field)
		require.Nil(t, e.Task, name)
	}
}

// testZeroTimes: the zero time given for a deadline or an audit bound is a
// given value like any other, not the field left out.
func testZeroTimes(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("zero")
	a := submit(t, acme, "ct-zero", object{"recipient": rcpt, "runTimeout": "10m"}, http.StatusCreated)
	before := snapshotOf(t, acme, "ct-zero", a.ID, rcpt)

	const zero = "0001-01-01T00:00:00Z"
	now := time.Now().UTC().Format(time.RFC3339Nano)
	submitPath := "/v1/pools/ct-zero/tasks"
	requireRefused(t, acme, []strictCase{
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","deadline":"`+zero+`"}`, "deadline"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","deadline":"`+zero+`","maxWait":"1m"}`, ""),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","key":"zero-`+e.run+`","deadline":"`+zero+`"}`, "deadline"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","deadline":"1969-12-31T23:59:59Z"}`, "deadline"),
		invalid("GET", "/v1/audit"+q("from", zero, "to", now), "", "from"),
		invalid("GET", "/v1/audit"+q("from", zero), "", "from"),
		invalid("GET", "/v1/audit"+q("to", zero), "", "to"),
		invalid("GET", "/v1/audit"+q("from", zero, "to", "0001-01-02T00:00:00Z"), "", "from"),
		invalid("GET", "/v1/audit"+q("from", "1969-12-31T00:00:00Z", "to", "1970-01-01T01:00:00Z"), "", "from"),
	})
	require.Equal(t, before, snapshotOf(t, acme, "ct-zero", a.ID, rcpt), "a refused request changed state")
}

// testInvalidUTF8: text that is not valid UTF-8 (or a JSON escape of an
// unpaired surrogate, which decodes to no character) is refused wherever
// it comes: body fields, raw JSON values, path and query parameters.
func testInvalidUTF8(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("utf8")
	a := submit(t, acme, "ct-utf8", object{"recipient": rcpt, "runTimeout": "10m"}, http.StatusCreated)
	before := snapshotOf(t, acme, "ct-utf8", a.ID, rcpt)

	submitPath := "/v1/pools/ct-utf8/tasks"
	done := "/v1/tasks/" + a.ID + "/complete"
	hb := "/v1/tasks/" + a.ID + "/heartbeat"
	ack := "/v1/mailbox/" + rcpt + "/ack"
	lease := a.Lease
	k1, k2 := "utf8-"+e.run+"\xff", "utf8-"+e.run+"\xfe"
	requireRefused(t, acme, []strictCase{
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","payload":"`+"\xff\xfe"+`"}`, "payload"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","payload":{"a":["ok","`+"\xc3"+`"]}}`, "payload"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","payload":{"`+"\xff"+`":1}}`, "payload"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","payload":"\udcff"}`, "payload"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","payload":"\ud800x"}`, "payload"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","key":"`+k1+`"}`, "key"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","key":"`+k2+`"}`, "key"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","key":"utf8-`+e.run+`\udc00"}`, "key"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+"\xff"+`"}`, "recipient"),
		invalid("POST", submitPath, `{"recipient":"`+rcpt+`","maxWait":"1m`+"\xff"+`"}`, "maxWait"),
		invalid("POST", submitPath, `{"`+"\xff"+`":1}`, "body"),
		invalid("POST", done, `{"lease":"`+lease+`","status":"succeeded","result":"`+"\xff"+`"}`, "result"),
		invalid("POST", done, `{"lease":"`+lease+`","status":"failed","error":"bad `+"\xff"+`"}`, "error"),
		invalid("POST", done, `{"lease":"`+lease+`","status":"failed","error":"bad \udfff"}`, "error"),
		invalid("POST", done, `{"lease":"`+lease+"\xff"+`","status":"succeeded"}`, "lease"),
		invalid("POST", hb, `{"lease":"`+lease+"\xff"+`"}`, "lease"),
		invalid("POST", ack, `{"upTo":"`+"\xff"+`"}`, "upTo"),
		invalid("POST", "/v1/pools/ct-utf8%FF/tasks", `{}`, "pool"),
		invalid("GET", "/v1/mailbox/"+rcpt+"%FF", "", "recipient"),
		invalid("POST", "/v1/mailbox/"+rcpt+"%FF/ack", `{"upTo":"AAAAAAAAAAE"}`, "recipient"),
		invalid("GET", "/v1/tasks/"+a.ID+"%FF", "", "id"),
		invalid("POST", "/v1/tasks/"+a.ID+"%C3/cancel", "", "id"),
		invalid("GET", "/v1/pools/ct-utf8%FF", "", "pool"),
		invalid("GET", "/v1/audit?pool=ct-utf8%FF", "", "pool"),
		invalid("GET", "/v1/audit?task="+a.ID+"%FE", "", "task"),
		invalid("GET", "/v1/mailbox/"+rcpt+"?after=%FF", "", "after"),
		invalid("GET", "/v1/audit?%FF=1", "", ""),
	})
	require.Equal(t, before, snapshotOf(t, acme, "ct-utf8", a.ID, rcpt), "a refused request changed state")

	// Neither key was taken as the replacement character: that key,
	// given as valid text, is new.
	fffd := submit(t, acme, "ct-utf8", object{"recipient": rcpt, "key": "utf8-" + e.run + "\ufffd"}, http.StatusCreated)
	require.NotEqual(t, a.ID, fffd.ID)
	// Valid text in every form is accepted as it is: a surrogate pair, an
	// escaped backslash before "u", characters outside ASCII.
	r := acme.raw(http.MethodPost, "/v1/pools/ct-utf8/tasks", `{"recipient":"`+rcpt+`","payload":["\ud83d\ude00","\\udc00","é日🙂"]}`)
	ok := expectSubmitted(t, r, http.StatusCreated)
	require.JSONEq(t, `["😀","\\udc00","é日🙂"]`, string(ok.Payload))
	expectTask(t, cancel(acme, ok.ID), http.StatusOK)
}

// testErrorBodies: every error is the API's JSON error body, also the
// ones that an HTTP server answers before the API sees the request: an
// invalid escape in the path, a malformed request, an unsupported
// expectation.
func testErrorBodies(t *testing.T, e env) {
	acme := e.acme(t)
	rcpt := e.recipient("errs")
	a := submit(t, acme, "ct-errs", object{"recipient": rcpt, "runTimeout": "10m"}, http.StatusCreated)
	before := snapshotOf(t, acme, "ct-errs", a.ID, rcpt)

	requireRefused(t, acme, []strictCase{
		invalid("POST", "/v1/pools/%ZZ/tasks", `{}`, ""),
		invalid("POST", "/v1/pools/ct-errs%/tasks", `{}`, ""),
		invalid("GET", "/v1/tasks/%zz", "", ""),
		invalid("POST", "/v1/tasks/"+a.ID+"%G1/cancel", "", ""),
		invalid("GET", "/v1/mailbox/%"+rcpt, "", ""),
		invalid("GET", "/v1/mailbox/"+rcpt+"?after=%ZZ", "", ""),
		invalid("GET", "/v1/audit?pool=%Z", "", ""),
	})
	r := acme.raw(http.MethodPost, "/v1/tasks/"+a.ID+"/cancel", "{}", "Expect", "something-else")
	requireError(t, r, http.StatusExpectationFailed, "invalid_request", "")

	u, err := url.Parse(e.target.BaseURL)
	require.NoError(t, err)
	if u.Scheme == "http" {
		host := u.Host
		token := "Authorization: Bearer " + e.target.AcmeToken + "\r\n"
		for _, c := range []struct {
			name, req string
			code      int
		}{
			{"no Host header", "GET /v1/pools HTTP/1.1\r\n" + token + "\r\n", http.StatusBadRequest},
			{"invalid escape", "POST /v1/pools/%ZZ/tasks HTTP/1.1\r\nHost: " + host + "\r\n" + token + "Content-Length: 2\r\n\r\n{}", http.StatusBadRequest},
			{"malformed request line", "GET /v1/pools\r\nHost: " + host + "\r\n\r\n", http.StatusBadRequest},
			{"malformed header", "GET /v1/pools HTTP/1.1\r\nHost: " + host + "\r\nno colon here\r\n\r\n", http.StatusBadRequest},
			{"bad Content-Length", "POST /v1/tasks/" + a.ID + "/cancel HTTP/1.1\r\nHost: " + host + "\r\n" + token + "Content-Length: x\r\n\r\n", http.StatusBadRequest},
			{"unsupported transfer coding", "POST /v1/tasks/" + a.ID + "/cancel HTTP/1.1\r\nHost: " + host + "\r\n" + token + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", http.StatusNotImplemented},
			{"headers too large", "GET /v1/pools HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("b", 1<<20+8192) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		} {
			r := wireRequest(t, host, c.req)
			require.Equal(t, c.code, r.code, "%s: body %s", c.name, r.body)
			requireError(t, r, c.code, "invalid_request", "")
		}
	}
	require.Equal(t, before, snapshotOf(t, acme, "ct-errs", a.ID, rcpt), "a refused request changed state")
}

// wireRequest writes req as it is on a new connection to host and reads
// the response.
func wireRequest(t *testing.T, host, req string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	require.NoError(t, err)
	defer conn.Close()
	dl, _ := ctx.Deadline()
	require.NoError(t, conn.SetDeadline(dl))
	// A server may answer and close before it has read the whole request.
	go func() { _, _ = conn.Write([]byte(req)) }()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{code: res.StatusCode, hdr: res.Header, body: body}
}
