package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// state is what a rejected request must leave as it was, read through the
// scheduler rather than the handler under test.
type state struct {
	Pools  []core.PoolStats
	Task   core.Task
	Msgs   []core.Message
	Events []core.Event
}

func (b *bundle) state(t *testing.T, taskID string) state {
	t.Helper()
	ctx := context.Background()
	var st state
	var err error
	st.Pools, err = b.sched.Pools(ctx)
	require.NoError(t, err)
	if taskID != "" {
		st.Task, err = b.sched.Task(ctx, "acme", taskID)
		require.NoError(t, err)
	}
	page, err := b.sched.Mailbox(ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme", Limit: core.MaxPageLimit})
	require.NoError(t, err)
	st.Msgs = page.Messages
	ev, err := b.sched.Audit(ctx, core.AuditQuery{Tenant: "acme", Limit: core.MaxPageLimit})
	require.NoError(t, err)
	st.Events = ev.Events
	return st
}

// checkRejection requires that a 4xx answer is a well-formed error naming
// the field, and that it changed nothing.
func checkRejection(t *testing.T, b *bundle, taskID string, before state, code int, out []byte) {
	t.Helper()
	require.Less(t, code, 500, "%s", out)
	if code < 400 {
		return
	}
	var e api.Error
	require.NoError(t, json.Unmarshal(out, &e), "%s", out)
	require.NotEmpty(t, e.Error.Code, "%s", out)
	require.NotEmpty(t, e.Error.Message, "%s", out)
	if code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge {
		require.NotEmpty(t, e.Error.Field, "a bad request names its field: %s", out)
	}
	if code == http.StatusTooManyRequests {
		return // a rejection is recorded, by design
	}
	require.Equal(t, before, b.state(t, taskID), "a %d changed state: %s", code, out)
}

var bodySeeds = []string{
	``, `{}`, `{`, `[]`, `null`, `"x"`, `{} {}`, `{}x`, `{"payload":{"a":[1,2,{"b":null}]}}`,
	`{"key":"k","recipient":"r","payload":1,"maxWait":"30s","runTimeout":"5m"}`,
	`{"deadline":"2026-03-01T12:00:01Z"}`, `{"deadline":"2026-03-01T11:00:00Z"}`, `{"maxWait":"1m","deadline":"2026-03-01T12:00:01Z"}`,
	`{"maxWait":"-1s"}`, `{"maxWait":"0"}`, `{"maxWait":"9999999999h"}`, `{"runTimeout":5}`, `{"key":1}`, `{"KEY":"x"}`,
	`{"key":"a","key":"a"}`, `{"tenant":"globex"}`, `{"payload":"\ud800"}`, `{"payload":1e999}`, `{"recipient":"\u0000"}`,
	`{"lease":"LEASE","status":"succeeded","result":{"ok":true}}`, `{"lease":"LEASE","status":"failed","error":"boom"}`,
	`{"lease":"LEASE","status":"running"}`, `{"lease":"LEASE","extend":"1h"}`, `{"lease":"LEASE","extend":"0s"}`,
	`{"lease":"LEASE","extend":"200h"}`, `{"upTo":"CURSOR"}`, `{"upTo":""}`, `{"upTo":"AAAAAAAAAAA"}`, `{"upTo":"////"}`,
	"{\"key\":\"\xff\"}", "{\"payload\":\"\xfe\"}", "{\"\xc3\":1}", `{"payload":"\ud83d\ude00"}`, `{"payload":"\\udc00"}`,
	`{"key":"\udc00"}`, `{"error":"\ud800\u0041"}`, "{\"lease\":\"LEASE\xff\"}",
}

func addBodySeeds(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add(s)
	}
}

// FuzzSubmitBody: a submit body never causes a 5xx or a panic, and a
// rejected one changes nothing.
func FuzzSubmitBody(f *testing.F) {
	addBodySeeds(f)
	f.Fuzz(func(t *testing.T, body string) {
		b := setup(t)
		before := b.state(t, "")
		code, _, out := b.do(t, "tok-acme", "POST", "/v1/pools/cpu/tasks", body)
		checkRejection(t, b, "", before, code, out)
		require.True(t, utf8.Valid(out), "the answer is UTF-8 text: %q", out)
		if code == http.StatusCreated {
			got := decode[api.TaskBody](t, out).Task
			require.Equal(t, "acme", got.Tenant)
			require.Equal(t, "running", got.State)
			require.Len(t, b.state(t, got.ID).Events, len(before.Events)+1)
		}
	})
}

// running returns a bundle with one running task of acme.
func running(t *testing.T) (*bundle, api.Task) {
	b := setup(t)
	return b, b.submitTask(t, "gpu", `{"payload":{"n":1}}`, http.StatusCreated)
}

// FuzzCompleteBody: as FuzzSubmitBody, for complete. LEASE in the body
// stands for the task's lease.
func FuzzCompleteBody(f *testing.F) {
	addBodySeeds(f)
	f.Fuzz(func(t *testing.T, body string) {
		b, task := running(t)
		before := b.state(t, task.ID)
		code, _, out := b.do(t, "tok-acme", "POST", "/v1/tasks/"+task.ID+"/complete", strings.ReplaceAll(body, "LEASE", task.Lease))
		checkRejection(t, b, task.ID, before, code, out)
		if code == http.StatusOK {
			got := decodeTask(t, out)
			require.Contains(t, []string{"succeeded", "failed"}, got.State)
			require.Equal(t, 0, b.pool(t, "gpu").Running)
		}
	})
}

// FuzzHeartbeatBody: as FuzzSubmitBody, for heartbeat.
func FuzzHeartbeatBody(f *testing.F) {
	addBodySeeds(f)
	f.Fuzz(func(t *testing.T, body string) {
		b, task := running(t)
		before := b.state(t, task.ID)
		code, _, out := b.do(t, "tok-acme", "POST", "/v1/tasks/"+task.ID+"/heartbeat", strings.ReplaceAll(body, "LEASE", task.Lease))
		checkRejection(t, b, task.ID, before, code, out)
		if code == http.StatusOK {
			until := decode[api.HeartbeatResponse](t, out).LeaseExpiresAt
			require.True(t, until.After(b.clock.Now()))
			require.Equal(t, until, b.state(t, task.ID).Task.LeaseExpiresAt)
		}
	})
}

// FuzzAckBody: as FuzzSubmitBody, for ack. CURSOR in the body stands for the
// cursor of the first message.
func FuzzAckBody(f *testing.F) {
	addBodySeeds(f)
	f.Fuzz(func(t *testing.T, body string) {
		b, _ := running(t)
		b.submitTask(t, "gpu", `{}`, http.StatusCreated)
		before := b.state(t, "")
		require.NotEmpty(t, before.Msgs)
		code, _, out := b.do(t, "tok-acme", "POST", "/v1/mailbox/acme/ack", strings.ReplaceAll(body, "CURSOR", before.Msgs[0].Cursor.String()))
		checkRejection(t, b, "", before, code, out)
	})
}

// FuzzDuration: api.ParseDuration accepts exactly the positive Go
// durations and names the field otherwise.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"30s", "5m", "1h2m3.5s", "0", "0s", "-1s", "", "5", "1x", "9223372036854775807ns", "9999999999h", ".5s", "1e3s", "+3s", "1µs", "1us"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := api.ParseDuration("maxWait", s)
		want, perr := time.ParseDuration(s)
		if perr == nil && want > 0 {
			require.NoError(t, err)
			require.Equal(t, want, d)
			return
		}
		var inv *core.InvalidError
		require.True(t, errors.As(err, &inv), "%q: %v", s, err)
		require.Equal(t, "maxWait", inv.Field)
		require.ErrorIs(t, err, core.ErrInvalid)
		require.Zero(t, d)
	})
}

// FuzzTime: api.ParseTime accepts RFC 3339 within [core.MinTime,
// core.MaxTime] and returns UTC; it never returns the zero time.
func FuzzTime(f *testing.F) {
	for _, s := range []string{"2026-03-01T12:00:00Z", "2026-03-01T12:00:00.123456789+02:00", "2026-03-01 12:00:00", "", "tomorrow", "2026-13-01T00:00:00Z", "2026-03-01T12:00:00z",
		"0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999999999Z", "1970-01-01T00:00:00Z", "2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z", "9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := api.ParseTime("deadline", s)
		want, perr := time.Parse(time.RFC3339Nano, s)
		if perr != nil || want.Before(core.MinTime) || want.After(core.MaxTime) {
			var inv *core.InvalidError
			require.True(t, errors.As(err, &inv), "%q: %v", s, err)
			require.Equal(t, "deadline", inv.Field)
			return
		}
		require.NoError(t, err)
		require.True(t, got.Equal(want))
		require.False(t, got.IsZero())
		require.Equal(t, time.UTC, got.Location())
	})
}

// FuzzQuery: any query string of the mailbox and audit routes is answered
// below 500, and a 400 names its field.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"", "after=&limit=10&wait=0s", "limit=0", "limit=1001", "limit=1&limit=2", "wait=20s", "wait=21s", "wait=5",
		"after=AAAAAAAAAAE", "after=!!", "%zz", "from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "from=x", "to=2026-03-01T00:00:00Z&from=2026-04-01T00:00:00Z",
		"pool=gpu&task=abc", "after=AAAAAAAAAAAAAAAAAAAAAA", "foo=1", "limit=%2B5", ";", "&&&=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		b, _ := running(t)
		before := b.state(t, "")
		for _, path := range []string{"/v1/mailbox/acme", "/v1/audit"} {
			// A long poll ends with its request; keep each short.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			r := httptest.NewRequestWithContext(ctx, "GET", path, nil)
			r.URL.RawQuery = raw
			r.Header.Set("Authorization", "Bearer tok-acme")
			rec := httptest.NewRecorder()
			b.h.ServeHTTP(rec, r)
			cancel()
			checkRejection(t, b, "", before, rec.Code, rec.Body.Bytes())
		}
		require.Equal(t, before, b.state(t, ""), "a read changed state")
	})
}

// FuzzRoute: any method and path is answered below 500 with a JSON body.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"GET /v1/pools", "GET /v1/pools/gpu", "POST /v1/pools/gpu/tasks", "GET /v1/tasks/x", "DELETE /v1/tasks/x",
		"GET /v1/tasks/%2F/cancel", "GET /v1//pools", "GET /", "PATCH /v1/audit", "GET /v1/mailbox/a%00b", "POST /v1/tasks/x/cancel"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		method, path, _ := strings.Cut(line, " ")
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			method = "GET"
		}
		b, _ := running(t)
		before := b.state(t, "")
		r := httptest.NewRequest("GET", "/", nil)
		r.Method = method
		r.URL.Path = path
		r.URL.RawPath = ""
		r.Header.Set("Authorization", "Bearer tok-acme")
		rec := httptest.NewRecorder()
		b.h.ServeHTTP(rec, r)
		require.Less(t, rec.Code, 500, rec.Body.String())
		require.True(t, json.Valid(rec.Body.Bytes()), rec.Body.String())
		if method != "POST" {
			require.Equal(t, before, b.state(t, ""), "a %s changed state", method)
		}
	})
}
