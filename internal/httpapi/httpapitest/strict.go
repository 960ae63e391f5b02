package httpapitest

import (
	"net/http"
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
