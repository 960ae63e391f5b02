package lambda

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	lambdart "github.com/aws/aws-lambda-go/lambda"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi/httpapitest"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/worker"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

var (
	bin  string
	moto *mototest.Server
)

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		lambdart.Start(worker.LambdaHandler(work))
		return
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "parkinglot-lambda")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin, err = testserver.BuildMain(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return mototest.RunMain(m, &moto, "the lambda runtime tests")
}

// config returns a lambda-runtime configuration over a fresh table and
// queue prefix on moto, with tokens for acme and globex, the extra token
// entries, and pools.
func config(pools []core.PoolConfig, extraTokens ...string) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := hex.EncodeToString(r[:])
	var b strings.Builder
	fmt.Fprintf(&b, `listen: 127.0.0.1:0
runtime: lambda
store: {type: aws, region: %s, endpoint: %q, table: parkinglot-%s, queuePrefix: pl%s-, createResources: true}
sweepInterval: 200ms
shutdownTimeout: 10s
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
`, mototest.Region, moto.Endpoint, name, name)
	for _, tok := range extraTokens {
		b.WriteString(tok)
	}
	b.WriteString(httpapitest.PoolsYAML(pools))
	return b.String()
}

// TestContract runs the HTTP API v1 contract suite against the binary in
// the lambda runtime on moto.
func TestContract(t *testing.T) {
	t.Parallel()
	httpapitest.Run(t, func(t *testing.T, pools []core.PoolConfig) httpapitest.Target {
		srv := testserver.Start(t, bin, config(pools, httpapitest.WorkerTokenYAML("worker-token")))
		require.Contains(t, srv.Log(), `"runtime":"lambda"`)
		hc := &http.Client{Transport: &http.Transport{}}
		t.Cleanup(hc.CloseIdleConnections)
		return httpapitest.Target{BaseURL: srv.URL, AcmeToken: "acme-token", GlobexToken: "globex-token", WorkerToken: "worker-token", Client: hc}
	})
}

// TestExpireOnSchedule: with no request to trigger it, the stand-in for
// expire's schedule reclaims a lapsed lease, which starts the parked task,
// and expires a parked task past its deadline; each request is logged with
// its Lambda request id.
func TestExpireOnSchedule(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, bin, config([]core.PoolConfig{
		{Name: "gpu", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute},
		{Name: "cpu", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute},
	}))
	acme, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	t.Cleanup(acme.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed bound
	defer cancel()

	a, err := acme.Submit(ctx, "gpu", api.SubmitRequest{Recipient: "w", RunTimeout: "1s"})
	require.NoError(t, err)
	require.Equal(t, "running", a.Task.State)
	b, err := acme.Submit(ctx, "gpu", api.SubmitRequest{Recipient: "w"})
	require.NoError(t, err)
	require.Equal(t, "parked", b.Task.State)
	c, err := acme.Submit(ctx, "cpu", api.SubmitRequest{Recipient: "w", RunTimeout: "10m"})
	require.NoError(t, err)
	d, err := acme.Submit(ctx, "cpu", api.SubmitRequest{Recipient: "w", MaxWait: "1s"})
	require.NoError(t, err)
	require.Equal(t, "parked", d.Task.State)

	want := map[string]string{a.Task.ID: "timed_out", b.Task.ID: "started", d.Task.ID: "expired"}
	seen := map[string]bool{}
	after := ""
	for len(seen) < len(want) {
		page, err := acme.Mailbox(ctx, "w", client.MailboxOptions{After: after, Wait: 5 * time.Second})
		require.NoError(t, err, "waiting for %v, saw %v", want, seen)
		for _, m := range page.Messages {
			if want[m.TaskID] == m.Type {
				seen[m.TaskID] = true
			}
		}
		after = page.Next
	}
	got, err := acme.Task(ctx, b.Task.ID)
	require.NoError(t, err)
	require.Equal(t, "running", got.State)
	got, err = acme.Task(ctx, c.Task.ID)
	require.NoError(t, err)
	require.Equal(t, "running", got.State)
	require.Contains(t, srv.Log(), `"requestId":"`)
	require.Contains(t, srv.Log(), `"route":"POST /v1/pools/{pool}/tasks"`)
	require.Equal(t, 0, srv.Stop(t, 20*time.Second))
}
