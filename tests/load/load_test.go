package load

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/loadtest"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const config = `
listen: 127.0.0.1:0
store: {type: memory}
sweepInterval: 50ms
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
    - {token: initech-token, tenant: initech}
pools:
  - {name: render, capacity: 24, maxParked: 20000, defaultMaxWait: 15m, runTimeout: 2s}
  - {name: train, capacity: 8, maxParked: 20000, defaultMaxWait: 15m, runTimeout: 2s}
`

func TestLoad(t *testing.T) {
	bin := testserver.Build(t) // without -race, whatever the test runs under
	srv := testserver.Start(t, bin, config)

	// About a minute on a busy 2-core machine. The run is bounded by its
	// task count; the timeout and maxWait only catch a hang, with room for a
	// machine several times slower (no long-wait task may expire however
	// slow the machine). The rate is reported, not required.
	ctx, cancel := context.WithTimeout(context.Background(), 16*time.Minute)
	defer cancel()
	cfg := loadtest.Config{
		Server:            srv.URL,
		Tokens:            []string{"acme-token", "globex-token", "initech-token"},
		Submissions:       10_000,
		Submitters:        32,
		Workers:           4,
		Hold:              2 * time.Millisecond,
		CrashFraction:     0.02,
		RunTimeout:        2 * time.Second,
		MaxWait:           15 * time.Minute,
		ShortWaitFraction: 0.01,
		ShortWait:         20 * time.Millisecond,
		Timeout:           15 * time.Minute,
	}
	rep, err := loadtest.Run(ctx, cfg)
	require.NoError(t, err)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("load test report:\n%s", b.String())

	require.Empty(t, rep.Errors)
	require.Equal(t, 10_000, rep.Submitted)
	require.Equal(t, 10_000, rep.Accepted, "nothing is rejected: maxParked exceeds the submissions")

	// The independent observer: hard capacity by the workers' own clocks,
	// exactly one outcome per task in the mailboxes, no start after a deadline.
	testserver.RequireInvariants(t, rep)

	// The load was real: both pools ran many tasks at once, crashes were
	// injected and their leases timed out, short-wait tasks expired. (The
	// observer's intervals run from a worker's receipt of the started
	// message to its complete: shorter than the slot the server holds by
	// the delivery, so seeing all of a pool's slots at once depends on the
	// machine's speed, and is not required.)
	require.GreaterOrEqual(t, rep.MaxOverlap["render"], 12)
	require.GreaterOrEqual(t, rep.MaxOverlap["train"], 4)
	require.Greater(t, rep.Crashed, 100)
	testserver.RequireOutcomes(t, rep, 10_000)
	require.Positive(t, rep.Outcomes["expired"])
	require.Greater(t, rep.Wake.N, 5000)

	require.Equal(t, 0, srv.Stop(t, 30*time.Second))
}

const pullConfig = `
listen: 127.0.0.1:0
store: {type: memory}
sweepInterval: 50ms
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
    - {token: initech-token, tenant: initech}
    - {token: worker-a, role: worker, name: worker-a, pools: [render, train]}
    - {token: worker-b, role: worker, name: worker-b, pools: [render, train]}
    - {token: worker-c, role: worker, name: worker-c, pools: [render, train]}
pools:
  - {name: render, capacity: 16, maxParked: 20000, defaultMaxWait: 15m, runTimeout: 30s, executor: pull}
  - {name: train, capacity: 4, maxParked: 20000, defaultMaxWait: 15m, runTimeout: 30s, executor: pull}
`

// TestLoadPull: three worker processes (pkg/worker, each with its own
// connections and more concurrency than the pools' capacity) claim the
// tasks of two pull pools. The observer is their handlers: no task runs
// twice, never more than capacity at once, one outcome each, no late
// start.
func TestLoadPull(t *testing.T) {
	bin := testserver.Build(t)
	srv := testserver.Start(t, bin, pullConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 16*time.Minute) // a hang guard
	defer cancel()
	cfg := loadtest.Config{
		Server:            srv.URL,
		Mode:              loadtest.ModePull,
		Tokens:            []string{"acme-token", "globex-token", "initech-token"},
		WorkerTokens:      []string{"worker-a", "worker-b", "worker-c"},
		Submissions:       5_000,
		Submitters:        16,
		Workers:           8,
		Hold:              time.Millisecond,
		RunTimeout:        30 * time.Second,
		MaxWait:           15 * time.Minute,
		ShortWaitFraction: 0.01,
		ShortWait:         20 * time.Millisecond,
		Timeout:           15 * time.Minute,
	}
	rep, err := loadtest.Run(ctx, cfg)
	require.NoError(t, err)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("pull load test report:\n%s", b.String())

	require.Empty(t, rep.Errors)
	require.Equal(t, 5_000, rep.Submitted)
	testserver.RequireInvariants(t, rep)
	// The load was real: claims ran at once in both pools (how many depends
	// on the machine: a busy one fills fewer slots; the observer's bound is
	// the capacity, checked above).
	require.Greater(t, rep.MaxOverlap["render"], 1, "claims ran at once")
	require.Greater(t, rep.MaxOverlap["train"], 1, "claims ran at once")
	require.Positive(t, rep.Outcomes["expired"])
	require.Equal(t, rep.Started, rep.Outcomes["succeeded"], "every claimed task succeeded")
	require.Equal(t, 0, srv.Stop(t, 30*time.Second))
}
