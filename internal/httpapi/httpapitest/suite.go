package httpapitest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Pools are the pools the suite asks its target for. Each subtest owns the
// pools it submits to, so that subtests run in parallel on one target.
var Pools = []core.PoolConfig{
	pc("ct-flow", 1, 5), pc("ct-wake", 1, 5), pc("ct-full", 1, 1), pc("ct-keys", 10, 10),
	pc("ct-lease", 10, 10), pc("ct-expire", 1, 5), pc("ct-cancel", 1, 5), pc("ct-bad", 2, 5),
	pc("ct-tenants", 4, 10), pc("ct-pages", 10, 10), pc("ct-poll", 4, 10), pc("ct-race", 2, 5),
	pc("ct-big", 1, 5), pc("ct-zero", 2, 5), pc("ct-utf8", 2, 5), pc("ct-errs", 2, 5), pc("ct-same", 10, 10),
	pull("ct-pull", 2, 10), pull("ct-pull-wait", 1, 5), pc("ct-wpermit", 1, 5), pc("ct-twait", 1, 5), pc("ct-roles", 1, 5),
}

// Worker and WorkerPools are the worker whose token Target.WorkerToken is:
// it works in the pull pools and one permit pool of Pools.
var (
	Worker      = "ct-worker"
	WorkerPools = []string{"ct-pull", "ct-pull-wait", "ct-wpermit"}
)

func pull(name string, capacity, maxParked int) core.PoolConfig {
	c := pc(name, capacity, maxParked)
	c.Executor = core.ExecutorPull
	return c
}

func pc(name string, capacity, maxParked int) core.PoolConfig {
	return core.PoolConfig{Name: name, Capacity: capacity, MaxParked: maxParked, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}
}

// env is what each subtest gets.
type env struct {
	target Target
	run    string // unique suffix of this run's recipients and keys
}

func (e env) as(t *testing.T, token string) caller {
	return caller{t: t, target: e.target, token: token}
}
func (e env) acme(t *testing.T) caller   { return e.as(t, e.target.AcmeToken) }
func (e env) globex(t *testing.T) caller { return e.as(t, e.target.GlobexToken) }
func (e env) worker(t *testing.T) caller { return e.as(t, e.target.WorkerToken) }

// recipient returns a mailbox name of this run only.
func (e env) recipient(name string) string { return name + "-" + e.run }

// Run drives the HTTP API v1 contract against the target that newTarget
// starts with the suite's Pools. newTarget is called once; it registers its
// own cleanup with t.Cleanup. The subtests run in parallel.
func Run(t *testing.T, newTarget func(t *testing.T, pools []core.PoolConfig) Target) {
	target := newTarget(t, slices.Clone(Pools))
	require.NotEmpty(t, target.BaseURL)
	require.NotEmpty(t, target.AcmeToken)
	require.NotEmpty(t, target.GlobexToken)
	require.NotEqual(t, target.AcmeToken, target.GlobexToken)
	require.NotEmpty(t, target.WorkerToken)
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := env{target: target, run: hex.EncodeToString(b[:])}

	cases := []struct {
		name string
		fn   func(t *testing.T, e env)
	}{
		{"Walkthrough", testWalkthrough},
		{"ParkAndWake", testParkAndWake},
		{"PoolFull", testPoolFull},
		{"Idempotency", testIdempotency},
		{"NotFound", testNotFound},
		{"Heartbeat", testHeartbeat},
		{"CompleteRepeat", testCompleteRepeat},
		{"LeaseLostAfterLeaseEnds", testLeaseLost},
		{"NoStartAfterDeadline", testNoStartAfterDeadline},
		{"Deadline", testDeadline},
		{"Cancel", testCancel},
		{"TenantIsolation", testTenantIsolation},
		{"Unauthorized", testUnauthorized},
		{"Routing", testRouting},
		{"BadInputChangesNothing", testBadInput},
		{"Pools", testPools},
		{"MailboxPages", testMailboxPages},
		{"AuditPages", testAuditPages},
		{"LongPoll", testLongPoll},
		{"ConcurrentSubmits", testConcurrentSubmits},
		{"MailboxPageBytes", testMailboxPageBytes},
		{"ZeroTimesAreGiven", testZeroTimes},
		{"InvalidUTF8", testInvalidUTF8},
		{"ErrorBodies", testErrorBodies},
		{"SameBody", testSameBody},
		{"Roles", testRoles},
		{"Claims", testClaims},
		{"WaitingClaim", testWaitingClaim},
		{"TaskWait", testTaskWait},
	}
	t.Run("contract", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				c.fn(t, e)
			})
		}
	})
}

// submit submits body to pool as c and requires status code.
func submit(t *testing.T, c caller, pool string, body any, code int) task {
	t.Helper()
	return expectSubmitted(t, c.send(http.MethodPost, "/v1/pools/"+pool+"/tasks", body), code)
}

func getTask(t *testing.T, c caller, id string) task {
	t.Helper()
	return expectTask(t, c.get("/v1/tasks/"+id), http.StatusOK)
}

func complete(c caller, id string, body any) response {
	c.t.Helper()
	return c.send(http.MethodPost, "/v1/tasks/"+id+"/complete", body)
}

func heartbeat(c caller, id string, body any) response {
	c.t.Helper()
	return c.send(http.MethodPost, "/v1/tasks/"+id+"/heartbeat", body)
}

func cancel(c caller, id string) response {
	c.t.Helper()
	return c.raw(http.MethodPost, "/v1/tasks/"+id+"/cancel", "")
}

func getPool(t *testing.T, c caller, name string) pool {
	t.Helper()
	return expect[pool](t, c.get("/v1/pools/"+name), http.StatusOK)
}

// awaitMessage long-polls rcpt's mailbox until a message of type typ for
// taskID arrives, and returns it. It does not acknowledge anything.
func awaitMessage(t *testing.T, c caller, rcpt, taskID, typ string) message {
	t.Helper()
	after := ""
	deadline := time.Now().Add(requestTimeout)
	for time.Now().Before(deadline) {
		page := expect[mailboxPage](t, c.get("/v1/mailbox/"+rcpt+q("after", after, "wait", "5s", "limit", "1000")), http.StatusOK)
		for _, m := range page.Messages {
			if m.TaskID == taskID && m.Type == typ {
				return m
			}
		}
		after = page.Next
	}
	require.FailNow(t, "message never came", "%s message for task %s in mailbox %s", typ, taskID, rcpt)
	return message{}
}

// messages returns every unacknowledged message of rcpt, without waiting.
func messages(t *testing.T, c caller, rcpt string) []message {
	t.Helper()
	var out []message
	after := ""
	for {
		page := expect[mailboxPage](t, c.get("/v1/mailbox/"+rcpt+q("after", after, "limit", "1000")), http.StatusOK)
		if len(page.Messages) == 0 {
			return out
		}
		out = append(out, page.Messages...)
		after = page.Next
	}
}

// typesFor lists the types of the messages of taskID, in mailbox order.
func typesFor(msgs []message, taskID string) []string {
	var out []string
	for _, m := range msgs {
		if m.TaskID == taskID {
			out = append(out, m.Type)
		}
	}
	return out
}

// events returns every audit event of the caller's tenant that matches the
// query parameters kv (besides limit and after), walking the pages.
func events(t *testing.T, c caller, kv ...string) []event {
	t.Helper()
	var out []event
	after := ""
	for range 100 {
		page := expect[auditPage](t, c.get("/v1/audit"+q(append(slices.Clone(kv), "after", after, "limit", "1000")...)), http.StatusOK)
		out = append(out, page.Events...)
		if page.Next == "" {
			return out
		}
		after = page.Next
	}
	require.FailNow(t, "audit pages never end")
	return nil
}

// waitPast waits until the wall clock is past ts, a time the server gave,
// plus a margin for clock skew. The checks that use it are about what the
// server does once an instant has passed, so real time must pass; nothing
// here waits for the server to act.
func waitPast(ts time.Time) {
	if d := time.Until(ts) + 100*time.Millisecond; d > 0 {
		time.Sleep(d)
	}
}

// rawObject decodes r's body into a generic object.
func rawObject(t *testing.T, r response) object {
	t.Helper()
	var o object
	require.NoError(t, json.Unmarshal(r.body, &o), "body: %s", r.body)
	return o
}

func retryAfter(t *testing.T, r response) int {
	t.Helper()
	n, err := strconv.Atoi(r.hdr.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", r.hdr.Get("Retry-After"))
	return n
}
