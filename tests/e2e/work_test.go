package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

const pullPool = `
    - {token: worker-token, role: worker, name: shell-worker, pools: [jobs]}
pools:
  - {name: jobs, capacity: 2, maxParked: 100, defaultMaxWait: 5m, runTimeout: 1m, executor: pull}
`

// script is the command `parkinglot work` runs: it echoes its payload as
// the result, or fails on a payload that asks it to.
const script = `in=$(cat); case "$in" in *fail*) echo "refused: $in" >&2; exit 3;; esac; printf '%s' "$in"`

// TestWork: `parkinglot work` runs the command once per task of a pull
// pool, payload in, stdout out, exit status to outcome; `parkinglot claim`
// claims as a worker.
func TestWork(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, bin, twoTenants+pullPool)
	c := cli{t: t, server: srv.URL}
	acme, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	t.Cleanup(acme.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()

	// claim: roles and an empty pool.
	r := c.run("acme-token", "claim", "jobs")
	require.Equal(t, 6, r.code, "a tenant may not claim: %s", r.stderr)
	r = c.run("worker-token", "claim", "jobs", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, decodeJSON[api.ClaimResponse](t, r).Tasks)
	// ... and one task, which the worker then completes by hand.
	sub, err := acme.Submit(ctx, "jobs", api.SubmitRequest{Payload: json.RawMessage(`"by hand"`)})
	require.NoError(t, err)
	r = c.run("worker-token", "claim", "jobs", "--json", "--max", "3")
	require.Equal(t, 0, r.code, r.stderr)
	claimed := decodeJSON[api.ClaimResponse](t, r).Tasks
	require.Len(t, claimed, 1)
	require.Equal(t, sub.Task.ID, claimed[0].ID)
	r = c.run("worker-token", "complete", claimed[0].ID, "--lease", claimed[0].Lease)
	require.Equal(t, 0, r.code, r.stderr)

	// work: usage errors (2) without a command or a pool.
	require.Equal(t, 2, c.run("worker-token", "work", "jobs").code)
	require.Equal(t, 2, c.run("worker-token", "work", "--", "true").code)

	// work: a worker process runs the script for each task.
	var ids []string
	for i := range 8 {
		payload := fmt.Sprintf(`{"n":%d}`, i)
		if i == 5 {
			payload = `{"fail":true}`
		}
		res, err := acme.Submit(ctx, "jobs", api.SubmitRequest{Payload: json.RawMessage(payload)})
		require.NoError(t, err)
		ids = append(ids, res.Task.ID)
	}
	cmd := exec.Command(bin, "work", "jobs", "--concurrency", "3", "--", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "PARKINGLOT_SERVER="+srv.URL, "PARKINGLOT_TOKEN=worker-token")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for i, id := range ids {
		var task api.Task
		require.Eventually(t, func() bool {
			task, err = acme.Task(ctx, id)
			return err == nil && (task.State == "succeeded" || task.State == "failed")
		}, 2*time.Minute, 10*time.Millisecond, "task %d; worker log:\n%s", i, &stderr)
		if i == 5 {
			require.Equal(t, "failed", task.State)
			require.Contains(t, task.Error, "exit status 3")
			require.Contains(t, task.Error, `refused: {"fail":true}`)
			continue
		}
		require.Equal(t, "succeeded", task.State)
		require.JSONEq(t, fmt.Sprintf(`{"n":%d}`, i), string(task.Result))
	}
	// Interrupted, it shuts down cleanly.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "worker log:\n%s", &stderr)

	// The audit trail names the worker on every claim.
	page, err := acme.Audit(ctx, client.AuditQuery{Pool: "jobs", Limit: 1000})
	require.NoError(t, err)
	starts := 0
	for _, e := range page.Events {
		if e.Type == "start" {
			require.Equal(t, "claimed by shell-worker", e.Detail)
			starts++
		}
	}
	require.Equal(t, 9, starts)
}
