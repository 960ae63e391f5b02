package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

// cli runs the binary's client commands against one server.
type cli struct {
	t      *testing.T
	server string
}

type result struct {
	code           int
	stdout, stderr string
}

func (c cli) run(token string, args ...string) result {
	c.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PARKINGLOT_SERVER="+c.server, "PARKINGLOT_TOKEN="+token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(c.t, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func decodeJSON[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return v
}

// decodeTask decodes stdout as a bare Task, strictly: a field that is not a
// Task field, such as a "task" wrapper, fails.
func decodeTask(t *testing.T, r result) api.Task {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var v api.Task
	require.NoError(t, dec.Decode(&v), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return v
}

func TestCLI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := cli{t: t, server: b.srv.URL}

	// submit --json: the task runs; the next parks; the third is rejected (exit 5).
	r := c.run("acme-token", "submit", "gpu", "--json", "--payload", `{"x":1}`, "--key", "k1")
	require.Equal(t, 0, r.code, r.stderr)
	first := decodeJSON[api.TaskBody](t, r).Task
	require.Equal(t, "running", first.State)
	require.JSONEq(t, `{"x":1}`, string(first.Payload))

	r = c.run("acme-token", "submit", "--json", "gpu") // flags before the pool too
	require.Equal(t, 0, r.code, r.stderr)
	parked := decodeJSON[api.TaskBody](t, r).Task
	require.Equal(t, "parked", parked.State)

	r = c.run("acme-token", "submit", "gpu", "--json")
	require.Equal(t, 5, r.code, r.stderr)
	rej := decodeJSON[api.Error](t, r)
	require.Equal(t, api.CodePoolFull, rej.Error.Code)
	require.NotNil(t, rej.Task)
	require.Equal(t, "rejected", rej.Task.State)

	// Same key, other body: conflict (exit 4).
	r = c.run("acme-token", "submit", "gpu", "--key", "k1", "--payload", `{"x":2}`)
	require.Equal(t, 4, r.code, r.stderr)
	require.Contains(t, r.stderr, "key_conflict")

	// status, human and JSON.
	r = c.run("acme-token", "status", first.ID)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "running")
	require.Contains(t, r.stdout, first.ID)
	r = c.run("acme-token", "status", "--json", first.ID)
	require.Equal(t, 0, r.code, r.stderr)
	status := decodeTask(t, r)
	// The CLI indents its output, so the payload's whitespace depends on
	// its depth: compare it as JSON.
	require.JSONEq(t, string(first.Payload), string(status.Payload))
	want := first
	want.Payload, status.Payload = nil, nil
	require.Equal(t, want, status)

	// Not found (3), another tenant's task included; unauthorized (6).
	require.Equal(t, 3, c.run("acme-token", "status", "nope").code)
	require.Equal(t, 3, c.run("globex-token", "status", first.ID).code)
	require.Equal(t, 6, c.run("bad-token", "pools").code)
	require.Equal(t, 6, c.run("", "pools").code)

	// Usage errors (2): missing argument, unknown flag, bad request field.
	require.Equal(t, 2, c.run("acme-token", "status").code)
	require.Equal(t, 2, c.run("acme-token", "submit", "gpu", "--bogus").code)
	require.Equal(t, 2, c.run("acme-token", "complete", first.ID).code)
	r = c.run("acme-token", "submit", "cpu", "--max-wait", "soon")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "maxWait")
	require.Equal(t, 2, c.run("acme-token", "frobnicate").code)

	// mailbox --json --ack: the started and rejected messages, then nothing.
	r = c.run("acme-token", "mailbox", "acme", "--json", "--ack")
	require.Equal(t, 0, r.code, r.stderr)
	page := decodeJSON[api.MailboxPage](t, r)
	var types []string
	for _, m := range page.Messages {
		types = append(types, m.Type)
	}
	require.Equal(t, []string{"started", "rejected"}, types)
	require.Equal(t, first.Lease, page.Messages[0].Lease)
	r = c.run("acme-token", "mailbox", "acme", "--json")
	require.Empty(t, decodeJSON[api.MailboxPage](t, r).Messages)

	// heartbeat, then complete with a wrong lease (4) and the right one.
	r = c.run("acme-token", "heartbeat", first.ID, "--lease", first.Lease, "--extend", "2m", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 4, c.run("acme-token", "complete", first.ID, "--lease", "wrong").code)
	resultFile := filepath.Join(t.TempDir(), "result.json")
	require.NoError(t, os.WriteFile(resultFile, []byte(`{"ok":true}`), 0o600))
	r = c.run("acme-token", "complete", first.ID, "--lease", first.Lease, "--result", "@"+resultFile, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	done := decodeTask(t, r)
	require.Equal(t, first.ID, done.ID)
	require.Equal(t, "succeeded", done.State)
	require.JSONEq(t, `{"ok":true}`, string(done.Result))

	// The parked task was woken; pools shows it running.
	r = c.run("acme-token", "pools", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	pools := decodeJSON[api.PoolList](t, r).Pools
	require.Len(t, pools, 2)
	require.Equal(t, api.Pool{Name: "gpu", Executor: "permit", Capacity: 1, Running: 1, Parked: 0, MaxParked: 1}, pools[1])
	r = c.run("acme-token", "pools")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "POOL")
	require.Equal(t, 3, c.run("acme-token", "pools", "nope").code)

	// cancel, and cancel of a finished task (4).
	r = c.run("acme-token", "cancel", parked.ID, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	cancelled := decodeTask(t, r)
	require.Equal(t, parked.ID, cancelled.ID)
	require.Equal(t, "cancelled", cancelled.State)
	require.Equal(t, 4, c.run("acme-token", "cancel", first.ID).code)

	// audit --json of one task.
	r = c.run("acme-token", "audit", "--task", parked.ID, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	evs := decodeJSON[api.AuditPage](t, r).Events
	var trail []string
	for _, e := range evs {
		trail = append(trail, e.From+">"+e.To)
	}
	require.Equal(t, []string{">parked", "parked>running", "running>cancelled"}, trail)
	r = c.run("acme-token", "audit", "--since", "1h")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 1+6, strings.Count(r.stdout, "\n"), r.stdout) // header + 6 events: 3 submits, complete, start, cancel
}

func TestLoadtestCommand(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, bin, twoTenants+twoPools)
	cmd := exec.Command(bin, "loadtest", "--server", srv.URL, "--tokens", "acme-token,globex-token",
		"-n", "200", "--crash", "0.05", "--run-timeout", "300ms", "--hold", "1ms")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "over-capacity starts: 0")
	require.Contains(t, string(out), "lifecycles/s")
}
