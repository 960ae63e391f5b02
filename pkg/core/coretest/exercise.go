package coretest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// NewBackend returns a fresh, empty backend that reads time from clock.
type NewBackend func(t *testing.T, clock core.Clock) core.Backend

// T0 is the stub clock's starting time in every test of the suite.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// maxVisibility is the longest queue visibility timeout a backend may use
// (SQS's limit); tests advance past it to see hidden messages come back.
const maxVisibility = 12 * time.Hour

// Exercise runs the contract suite against the backends newBackend makes:
// every port on its own, the task lifecycle through core.Scheduler, claims
// of pull pools, pushes of push pools, wake-ups and isolation, concurrent use and crashes. Each subtest gets its own clock and backend.
func Exercise(t *testing.T, newBackend NewBackend) {
	t.Helper()
	t.Run("Port", func(t *testing.T) {
		t.Parallel()
		exercisePorts(t, newBackend)
		exercisePortRaces(t, newBackend)
	})
	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		exerciseLifecycle(t, newBackend)
	})
	t.Run("Claim", func(t *testing.T) {
		t.Parallel()
		exerciseClaims(t, newBackend)
	})
	t.Run("Push", func(t *testing.T) {
		t.Parallel()
		exercisePush(t, newBackend)
	})
	t.Run("Wake", func(t *testing.T) {
		t.Parallel()
		exerciseWakeAndIsolation(t, newBackend)
	})
	t.Run("Concurrency", func(t *testing.T) {
		t.Parallel()
		exerciseConcurrency(t, newBackend)
		exerciseRaces(t, newBackend)
		exerciseAuditReplay(t, newBackend)
		exerciseLateStart(t, newBackend)
	})
	t.Run("Crash", func(t *testing.T) {
		t.Parallel()
		exerciseCrashes(t, newBackend)
	})
}

// portBundle is what a port-level test works with.
type portBundle struct {
	ctx   context.Context
	clock *core.StubClock
	b     core.Backend
}

func setupPort(t *testing.T, newBackend NewBackend) *portBundle {
	t.Helper()
	clock := core.NewStubClock(T0)
	return &portBundle{ctx: t.Context(), clock: clock, b: newBackend(t, clock)}
}

func (pb *portBundle) putPool(t *testing.T, name string, capacity, maxParked int) {
	t.Helper()
	require.NoError(t, pb.b.PutPool(pb.ctx, core.PoolConfig{
		Name: name, Capacity: capacity, MaxParked: maxParked,
		DefaultMaxWait: time.Hour, RunTimeout: time.Minute,
	}))
}

func (pb *portBundle) pool(t *testing.T, name string) core.Pool {
	t.Helper()
	p, err := pb.b.Pool(pb.ctx, name)
	require.NoError(t, err)
	return p
}

// task returns a task item in state for direct commits.
func testTask(id, tenant, pool string, state core.State, at time.Time) core.Task {
	t := core.Task{
		ID: id, Tenant: tenant, Pool: pool, Recipient: tenant, State: state,
		SubmittedAt: at, Deadline: at.Add(time.Hour), RunTimeout: time.Minute,
	}
	switch state {
	case core.StateRunning:
		t.StartedAt = at
		t.Lease = "lease-" + id
		t.LeaseExpiresAt = at.Add(time.Minute)
	case core.StateParked:
	default:
		t.EndedAt = at
	}
	return t
}

// allMessages reads a whole mailbox from cursor zero, page by page.
func allMessages(t *testing.T, ctx context.Context, b core.Backend, tenant, recipient string) []core.Message {
	t.Helper()
	var out []core.Message
	var after core.Cursor
	for {
		page, err := b.Messages(ctx, tenant, recipient, after, core.MaxPageLimit)
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Cursor
	}
}

// allEvents reads every event of tenant in [from, to), page by page, checking
// that pages neither repeat nor skip.
func allEvents(t *testing.T, ctx context.Context, b core.Backend, q core.AuditQuery) []core.Event {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = core.MaxPageLimit
	}
	var out []core.Event
	for range 1 << 20 {
		page, err := b.Events(ctx, q)
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		last := page[len(page)-1]
		q.After = core.AuditCursor{At: last.At, Seq: last.Seq}
	}
	t.Fatal("audit pagination does not end")
	return nil
}
