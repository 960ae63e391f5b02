package aws

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi/httpapitest"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

const tenants = `
listen: 127.0.0.1:0
sweepInterval: 100ms
shutdownTimeout: 10s
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
`

// TestContract runs the HTTP API v1 contract suite against the binary with
// store type aws on moto.
func TestContract(t *testing.T) {
	t.Parallel()
	httpapitest.Run(t, func(t *testing.T, pools []core.PoolConfig) httpapitest.Target {
		srv := testserver.Start(t, bin, tenants+httpapitest.WorkerTokenYAML("worker-token")+storeBlock()+httpapitest.PoolsYAML(pools))
		hc := &http.Client{Transport: &http.Transport{}}
		t.Cleanup(hc.CloseIdleConnections)
		return httpapitest.Target{BaseURL: srv.URL, AcmeToken: "acme-token", GlobexToken: "globex-token", WorkerToken: "worker-token", Client: hc}
	})
}

// TestRestartKeepsState stops a server with a running and a parked task
// and starts another on the same table and queues: the tasks are there, the
// completion of the first wakes the second, and the outcome lands in the
// mailbox that the first process wrote to.
func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	cfg := tenants + storeBlock() + "pools:\n  - {name: gpu, capacity: 1, maxParked: 5, defaultMaxWait: 1m, runTimeout: 1m}\n"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed bound
	defer cancel()

	srv := testserver.Start(t, bin, cfg)
	acme, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	a, err := acme.Submit(ctx, "gpu", api.SubmitRequest{Recipient: "w"})
	require.NoError(t, err)
	b, err := acme.Submit(ctx, "gpu", api.SubmitRequest{Recipient: "w"})
	require.NoError(t, err)
	require.Equal(t, []string{"running", "parked"}, []string{a.Task.State, b.Task.State})
	acme.CloseIdleConnections()
	require.Equal(t, 0, srv.Stop(t, 20*time.Second))

	srv2 := testserver.Start(t, bin, cfg)
	acme2, err := client.New(srv2.URL, "acme-token")
	require.NoError(t, err)
	t.Cleanup(acme2.CloseIdleConnections)
	p, err := acme2.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, 1, p.Running)
	require.Equal(t, 1, p.Parked)
	_, err = acme2.Complete(ctx, a.Task.ID, api.CompleteRequest{Lease: a.Task.Lease, Status: "succeeded"})
	require.NoError(t, err)
	got, err := acme2.Task(ctx, b.Task.ID)
	require.NoError(t, err)
	require.Equal(t, "running", got.State, "the completion woke the parked task")

	page, err := acme2.Mailbox(ctx, "w", client.MailboxOptions{})
	require.NoError(t, err)
	short := func(id string) string { return id[len(id)-4:] }
	var seen []string
	for _, m := range page.Messages {
		seen = append(seen, short(m.TaskID)+":"+m.Type)
	}
	require.Equal(t, []string{short(a.Task.ID) + ":started", short(a.Task.ID) + ":succeeded", short(b.Task.ID) + ":started"}, seen)
	require.Equal(t, 0, srv2.Stop(t, 20*time.Second))
}
