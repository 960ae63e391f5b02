package lambda

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/loadtest"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

// loadTasks sizes TestLoad. The default took 4m51s under -race on a
// 2-core machine shared with other builds: moto serves DynamoDB requests
// one at a time (docs/benchmarks.md). It runs in `make test-load`; -short
// (`make test`) skips it.
var loadTasks = flag.Int("lambda.load-tasks", 2000, "tasks submitted by TestLoad")

// loadServer is the server configuration of the load runs: the runtime
// (lambda or native) over the aws store on a fresh table and queue prefix
// of the moto at endpoint, three tenants, and one pool small enough that
// tasks park. Expire (or the native sweeper) runs every 5 s: it reclaims
// the crashed workers' leases, and each run costs moto several queries. A
// waiting long poll reads its mailbox's head every 500 ms.
func loadServer(runtime, endpoint string) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := hex.EncodeToString(r[:])
	return fmt.Sprintf(`listen: 127.0.0.1:0
runtime: %s
store: {type: aws, region: %s, endpoint: %q, table: pl-load-%s, queuePrefix: pl%s-, createResources: true}
sweepInterval: 5s
mailboxPoll: 500ms
shutdownTimeout: 10s
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
    - {token: initech-token, tenant: initech}
pools:
  - {name: render, capacity: 12, maxParked: 5000, defaultMaxWait: 40m, runTimeout: 10s}
`, runtime, mototest.Region, endpoint, name, name)
}

// loadConfig is the load of TestLoad and of BenchmarkRuntimes: permit-mode
// workers of three tenants, four recipients each, 2% of whose starts are
// never completed (the worker "crashes" and the lease times out), 2% of
// whose submissions may wait only 20 ms. One pool: the load generator
// sends consecutive submissions to the pools in turn and to one tenant's
// recipient per round, so with one pool consecutive submissions go to
// different mailboxes; each mailbox's sequence number is one item, and
// concurrent transitions writing to the same mailbox cost the aws store a
// retried transaction each.
func loadConfig(url string, tasks int) loadtest.Config {
	return loadtest.Config{
		Server:            url,
		Tokens:            []string{"acme-token", "globex-token", "initech-token"},
		Submissions:       tasks,
		Submitters:        4,
		Workers:           4,
		Hold:              200 * time.Millisecond,
		CrashFraction:     0.02,
		RunTimeout:        10 * time.Second,
		MaxWait:           30 * time.Minute,
		ShortWaitFraction: 0.02,
		ShortWait:         20 * time.Millisecond,
		Timeout:           30 * time.Minute,
	}
}

// TestLoad drives the binary in the lambda runtime (every request through
// the four Lambda handlers over DynamoDB + SQS on moto) and checks the run
// with the load generator's independent observer.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test on moto: skipped with -short; make test-load runs it")
	}
	t.Parallel()
	// A moto of its own: on the package's moto its requests would queue
	// behind the other tests' on the one serialized DynamoDB.
	own := mototest.Start(t)
	srv := testserver.Start(t, bin, loadServer("lambda", own.Endpoint))
	require.Contains(t, srv.Log(), `"runtime":"lambda"`)

	// Bounded by the task count; the timeouts only catch a hang, with room
	// for a machine several times slower. The rate is reported, not required.
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Minute)
	defer cancel()
	rep, err := loadtest.Run(ctx, loadConfig(srv.URL, *loadTasks))
	require.NoError(t, err)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("load test report (runtime lambda on moto; not a performance figure):\n%s", b.String())

	require.Empty(t, rep.Errors)
	require.Equal(t, *loadTasks, rep.Submitted)
	require.Equal(t, *loadTasks, rep.Accepted, "nothing is rejected: maxParked exceeds the submissions")

	// The independent observer: hard capacity by the workers' own clocks,
	// exactly one outcome per task in the mailboxes, no start after a deadline.
	testserver.RequireInvariants(t, rep)

	// The load was real: the pool ran at capacity and parked work,
	// crashes were injected and their leases timed out, short-wait tasks
	// expired.
	require.GreaterOrEqual(t, rep.MaxOverlap["render"], 6, "the workers held at least half the slots at once")
	require.Greater(t, rep.Crashed, *loadTasks/100)
	testserver.RequireOutcomes(t, rep, *loadTasks)
	require.Positive(t, rep.Outcomes["expired"])
	require.Greater(t, rep.Wake.N, *loadTasks/10, "tasks parked and were woken by releases")

	require.Equal(t, 0, srv.Stop(t, 30*time.Second))
}

// TestLoadPull drives the binary in the lambda runtime with pull pools:
// three worker processes (pkg/worker, a worker token each) claim through
// dispatch, and their handlers are the independent observer: no task runs
// twice, never more than capacity at once, one outcome each, no late
// start.
func TestLoadPull(t *testing.T) {
	if testing.Short() {
		t.Skip("load test on moto: skipped with -short; make test-load runs it")
	}
	t.Parallel()
	own := mototest.Start(t)
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := hex.EncodeToString(r[:])
	srv := testserver.Start(t, bin, fmt.Sprintf(`listen: 127.0.0.1:0
runtime: lambda
store: {type: aws, region: %s, endpoint: %q, table: pl-pull-%s, queuePrefix: pl%s-, createResources: true}
sweepInterval: 5s
mailboxPoll: 500ms
shutdownTimeout: 10s
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
    - {token: initech-token, tenant: initech}
    - {token: worker-a, role: worker, name: worker-a, pools: [render]}
    - {token: worker-b, role: worker, name: worker-b, pools: [render]}
    - {token: worker-c, role: worker, name: worker-c, pools: [render]}
pools:
  - {name: render, capacity: 6, maxParked: 5000, defaultMaxWait: 40m, runTimeout: 30s, executor: pull}
`, mototest.Region, own.Endpoint, name, name))
	require.Contains(t, srv.Log(), `"runtime":"lambda"`)
	tasks := *loadTasks / 8
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Minute) // a hang guard
	defer cancel()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Server:            srv.URL,
		Mode:              loadtest.ModePull,
		Tokens:            []string{"acme-token", "globex-token", "initech-token"},
		WorkerTokens:      []string{"worker-a", "worker-b", "worker-c"},
		Submissions:       tasks,
		Submitters:        4,
		Workers:           4,
		Hold:              50 * time.Millisecond,
		RunTimeout:        30 * time.Second,
		MaxWait:           30 * time.Minute,
		ShortWaitFraction: 0.02,
		ShortWait:         20 * time.Millisecond,
		Timeout:           30 * time.Minute,
	})
	require.NoError(t, err)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("pull load test report (runtime lambda on moto; not a performance figure):\n%s", b.String())
	require.Empty(t, rep.Errors)
	require.Equal(t, tasks, rep.Submitted)
	testserver.RequireInvariants(t, rep)
	// Claims on SQS FIFO: a message group is blocked while one receive
	// holds its messages; each tenant's messages are spread over a few
	// groups (awsstore.Options.GroupBuckets), so several claims take
	// messages at once.
	require.GreaterOrEqual(t, rep.MaxOverlap["render"], 2, "claims ran at once")
	require.Equal(t, rep.Started, rep.Outcomes["succeeded"], "every claimed task succeeded")
	require.Equal(t, 0, srv.Stop(t, 30*time.Second))
}

// benchTasks sizes BenchmarkRuntimes.
var benchTasks = flag.Int("lambda.bench-tasks", 500, "tasks submitted by each run of BenchmarkRuntimes")

// BenchmarkRuntimes runs the load of TestLoad against the native runtime
// and the local serverless runtime (the four Lambda handlers behind the
// local gateway), each over the aws store on a fresh moto, and reports lifecycles/s and the server-side wake latency
// percentiles of the last run. moto serves DynamoDB requests one at a
// time on this machine's CPU: the figures compare the runtimes, they are
// not AWS performance.
func BenchmarkRuntimes(b *testing.B) {
	if testing.Short() {
		b.Skip("load benchmark: skipped with -short")
	}
	for _, runtime := range []string{"native", "lambda"} {
		b.Run(runtime, func(b *testing.B) {
			var rep loadtest.Report
			for range b.N {
				own := mototest.Start(b)
				srv := testserver.Start(b, bin, loadServer(runtime, own.Endpoint))
				ctx, cancel := context.WithTimeout(context.Background(), 32*time.Minute)
				var err error
				rep, err = loadtest.Run(ctx, loadConfig(srv.URL, *benchTasks))
				cancel()
				require.NoError(b, err)
				require.True(b, rep.OK(), "the observer found a violation")
				require.Empty(b, rep.Errors)
				require.Equal(b, 0, srv.Stop(b, 30*time.Second))
				own.Stop()
			}
			var sb strings.Builder
			rep.Print(&sb)
			b.Logf("%s runtime on moto (not a performance figure):\n%s", runtime, sb.String())
			b.ReportMetric(rep.LifecyclesPerSec, "lifecycles/s")
			b.ReportMetric(float64(rep.Wake.P50.Microseconds())/1000, "wake-p50-ms")
			b.ReportMetric(float64(rep.Wake.P95.Microseconds())/1000, "wake-p95-ms")
			b.ReportMetric(float64(rep.Wake.P99.Microseconds())/1000, "wake-p99-ms")
			b.ReportMetric(float64(rep.Wake.N), "wakes")
		})
	}
}
