package aws

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/loadtest"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

// loadTasks sizes the load: 2,000 tasks by default, about three and a half
// minutes on moto through the launcher (tests/moto/serialized_moto.py),
// which serves DynamoDB requests one at a time; see docs/benchmarks.md. It
// runs in `make test-load`; -short (`make test`) skips it.
var loadTasks = flag.Int("aws.load-tasks", 2000, "tasks submitted by TestLoad")

// TestLoad drives the binary on the aws store with permit-mode workers of
// three tenants on two pools, 2% of whose starts are never completed (the
// worker "crashes" and the lease times out), and checks the run with the
// load generator's independent observer.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test on moto: skipped with -short; make test-load runs it")
	}
	t.Parallel()
	// A moto of its own: on the package's moto its requests would queue
	// behind the other tests' on the one serialized DynamoDB, and theirs
	// behind its.
	own := mototest.Start(t)
	srv := testserver.Start(t, bin, `
listen: 127.0.0.1:0
sweepInterval: 1s
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
    - {token: initech-token, tenant: initech}
`+storeBlockOn(own)+`
pools:
  - {name: render, capacity: 12, maxParked: 5000, defaultMaxWait: 40m, runTimeout: 20s}
  - {name: train, capacity: 6, maxParked: 5000, defaultMaxWait: 40m, runTimeout: 20s}
`)

	// About three and a half minutes alone on a 2-core machine. The run is
	// bounded by its task count; the timeout and maxWait only catch a hang,
	// with room for a machine several times slower (no long-wait task may
	// expire however slow the machine). The rate is reported, not required.
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Minute)
	defer cancel()
	cfg := loadtest.Config{
		Server:            srv.URL,
		Tokens:            []string{"acme-token", "globex-token", "initech-token"},
		Submissions:       *loadTasks,
		Submitters:        4,
		Workers:           2,
		Hold:              50 * time.Millisecond,
		CrashFraction:     0.02,
		RunTimeout:        10 * time.Second,
		MaxWait:           30 * time.Minute,
		ShortWaitFraction: 0.05,
		ShortWait:         20 * time.Millisecond,
		Timeout:           30 * time.Minute,
	}
	rep, err := loadtest.Run(ctx, cfg)
	require.NoError(t, err)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("load test report (moto; not a performance figure):\n%s", b.String())

	require.Empty(t, rep.Errors)
	require.Equal(t, *loadTasks, rep.Submitted)
	require.Equal(t, *loadTasks, rep.Accepted, "nothing is rejected: maxParked exceeds the submissions")

	// The independent observer: hard capacity by the workers' own clocks,
	// exactly one outcome per task in the mailboxes, no start after a deadline.
	testserver.RequireInvariants(t, rep)

	// The load was real: both pools held several tasks at once, crashes
	// were injected and their leases timed out, short-wait tasks expired,
	// and a good part of the tasks parked and were woken by a release (the
	// audit trail's wakes). Slots are many and holds short, so that the
	// run fits moto's pace; parking comes from the bursts.
	require.Greater(t, rep.MaxOverlap["render"], 1)
	require.Greater(t, rep.MaxOverlap["train"], 1)
	require.Positive(t, rep.Crashed)
	testserver.RequireOutcomes(t, rep, *loadTasks)
	require.Positive(t, rep.Outcomes["expired"])
	require.Greater(t, rep.Wake.N, *loadTasks/10, "parked tasks woken by a release")

	require.Equal(t, 0, srv.Stop(t, 30*time.Second))
}
