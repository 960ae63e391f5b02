package loadtest_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/internal/loadtest"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup serves HTTP API v1 over core and backend, with a sweeper, for
// tokens t1 and t2.
func setup(t *testing.T, backend core.Backend, pools ...core.PoolConfig) string {
	t.Helper()
	sched, err := core.New(core.Config{Backend: backend})
	require.NoError(t, err)
	for _, p := range pools {
		require.NoError(t, sched.PutPool(context.Background(), p))
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{
		Scheduler: sched,
		Auth:      httpapi.NewTokenAuth(map[string]string{"t1": "acme", "t2": "globex"}),
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = sched.Sweep(ctx)
			}
		}
	}()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		wg.Wait()
	})
	return srv.URL
}

func pool(name string, capacity int) core.PoolConfig {
	return core.PoolConfig{Name: name, Capacity: capacity, MaxParked: 10_000, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}
}

func TestRun(t *testing.T) {
	t.Parallel()
	url := setup(t, memstore.New(memstore.Options{}), pool("a", 3), pool("b", 2))
	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		Server: url, Tokens: []string{"t1", "t2"}, Submissions: 300, Submitters: 8, Workers: 2,
		Hold: time.Millisecond, CrashFraction: 0.05, RunTimeout: time.Second,
		ShortWaitFraction: 0.05, ShortWait: 5 * time.Millisecond, Timeout: time.Minute,
	})
	require.NoError(t, err)
	var b strings.Builder
	rep.Print(&b)
	t.Log(b.String())
	require.Empty(t, rep.Errors)
	require.True(t, rep.OK())
	require.Equal(t, 300, rep.Submitted)
	require.Equal(t, map[string]int{"a": 3, "b": 2}, rep.MaxOverlap)
	require.Positive(t, rep.Crashed)
	require.Equal(t, rep.Crashed+rep.LeaseLost, rep.Outcomes["timed_out"], "timed out: the crashed tasks and those whose lease ended before their completion")
	require.Equal(t, 300, rep.Outcomes["succeeded"]+rep.Outcomes["timed_out"]+rep.Outcomes["expired"])
	require.Positive(t, rep.Wake.N)
}

// overbooking is a fault injected into the real backend: it ignores the
// capacity conditions of every transaction, and reports a larger capacity
// to the scheduler's admission reads (Pool) than to the pool listing
// (Pools) that clients see.
type overbooking struct{ *memstore.Store }

func (o overbooking) Pool(ctx context.Context, name string) (core.Pool, error) {
	p, err := o.Store.Pool(ctx, name)
	p.Capacity += 100
	return p, err
}

func (o overbooking) Commit(ctx context.Context, txn *core.Txn) error {
	t := *txn
	t.NeedSlot, t.FirstInLine = false, false
	return o.Store.Commit(ctx, &t)
}

// The observer catches a server that starts more tasks than capacity.
func TestRunDetectsOverCapacity(t *testing.T) {
	t.Parallel()
	url := setup(t, overbooking{memstore.New(memstore.Options{})}, pool("a", 2))
	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		Server: url, Tokens: []string{"t1"}, Submissions: 50, Submitters: 16, Workers: 2,
		Hold: 50 * time.Millisecond, Timeout: time.Minute,
	})
	require.NoError(t, err)
	require.Positive(t, rep.OverCapacity)
	require.Greater(t, rep.MaxOverlap["a"], 2)
	require.False(t, rep.OK())
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := loadtest.Run(context.Background(), loadtest.Config{})
	require.ErrorContains(t, err, "token")
	_, err = loadtest.Run(context.Background(), loadtest.Config{Tokens: []string{"x"}, CrashFraction: 2})
	require.ErrorContains(t, err, "fractions")
	_, err = loadtest.Run(context.Background(), loadtest.Config{Tokens: []string{"x", "y", "x"}})
	require.ErrorContains(t, err, "distinct")
}
