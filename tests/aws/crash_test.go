package aws

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/awsstore/awsfault"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// maxCrashPoints bounds the enumeration of one operation's calls.
const maxCrashPoints = 200

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	crashCapacity = 2
	crashLease    = 20 * time.Second
	crashWait     = 10 * time.Minute // parked tasks' deadline, unless a scenario says
	outboxGrace   = 30 * time.Second // core.Config's default
)

var (
	cleanOnce sync.Once
	cleanDDB  *dynamodb.Client
	cleanSQS  *sqs.Client
)

// clean returns SDK clients on moto without faults, built once.
func clean() (*dynamodb.Client, *sqs.Client) {
	cleanOnce.Do(func() {
		cfg := moto.Config()
		cfg.Retryer = func() aws.Retryer { return awsstore.NewRetryer(0) }
		cleanDDB, cleanSQS = dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	})
	return cleanDDB, cleanSQS
}

// crashEnv is one crash point: a table and queues of their own, a process
// (store and scheduler) whose AWS calls go through the injector, and the
// stub clock that every process of the scenario shares.
type crashEnv struct {
	table, prefix string
	clock         *core.StubClock
	inj           *awsfault.Injector
	store         *awsstore.Store
	sched         *core.Scheduler      // wakes inline, as serve does
	quiet         *core.Scheduler      // same store, wakes nothing
	tasks         map[string]core.Task // by name, as submitted
}

func newCrashEnv(t *testing.T, ctx context.Context) *crashEnv {
	ddb, sq := clean()
	n := uniq()
	e := &crashEnv{table: "pl-" + n, prefix: "pl" + n + "-", clock: core.NewStubClock(t0), inj: awsfault.New(ddb, sq), tasks: map[string]core.Task{}}
	var err error
	e.store, err = e.newStore(ctx, e.inj.DynamoDB(), e.inj.SQS())
	require.NoError(t, err)
	require.NoError(t, e.store.CreateResources(ctx))
	e.sched, err = core.New(core.Config{Backend: e.store, Clock: e.clock})
	require.NoError(t, err)
	e.quiet, err = core.New(core.Config{Backend: e.store, Clock: e.clock, Wake: func(context.Context, string, time.Time) {}})
	require.NoError(t, err)
	require.NoError(t, e.sched.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: crashCapacity, MaxParked: 10, DefaultMaxWait: crashWait, RunTimeout: crashLease}))
	return e
}

// newStore is a store on the scenario's table and queues. Visibility is
// SQS's minimum, so that messages a dead process held come back within a
// second of real time.
func (e *crashEnv) newStore(ctx context.Context, ddb awsstore.DynamoDBAPI, sq awsstore.SQSAPI) (*awsstore.Store, error) {
	return awsstore.New(ctx, awsstore.Options{
		DynamoDB: ddb, SQS: sq, Table: e.table, QueuePrefix: e.prefix,
		Clock: e.clock, Visibility: time.Second, CreateQueues: true,
	})
}

// submit submits a task of tenant as name through the live process.
func (e *crashEnv) submit(t *testing.T, ctx context.Context, name, tenant string, maxWait time.Duration) core.Task {
	t.Helper()
	res, err := e.sched.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: "p", MaxWait: maxWait})
	require.NoError(t, err)
	e.tasks[name] = res.Task
	return res.Task
}

// scenario is one operation: prepare builds the state with the live
// process, op runs the operation whose calls are enumerated.
type scenario struct {
	name    string
	prepare func(t *testing.T, ctx context.Context, e *crashEnv)
	op      func(ctx context.Context, e *crashEnv) error
}

var scenarios = []scenario{
	{
		name:    "submit",
		prepare: func(*testing.T, context.Context, *crashEnv) {},
		op: func(ctx context.Context, e *crashEnv) error {
			_, err := e.sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
			return err
		},
	},
	{
		name: "park",
		prepare: func(t *testing.T, ctx context.Context, e *crashEnv) {
			e.submit(t, ctx, "a", "acme", 0)
			e.submit(t, ctx, "b", "globex", 0)
		},
		op: func(ctx context.Context, e *crashEnv) error {
			_, err := e.sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
			return err
		},
	},
	{
		name: "wake",
		prepare: func(t *testing.T, ctx context.Context, e *crashEnv) {
			a := e.submit(t, ctx, "a", "acme", 0)
			e.submit(t, ctx, "b", "globex", 0)
			e.submit(t, ctx, "c", "acme", 0)
			e.submit(t, ctx, "d", "globex", 0)
			_, err := e.quiet.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
			require.NoError(t, err)
		},
		op: func(ctx context.Context, e *crashEnv) error {
			_, err := e.sched.Dispatch(ctx, "p")
			return err
		},
	},
	{
		name: "complete",
		prepare: func(t *testing.T, ctx context.Context, e *crashEnv) {
			e.submit(t, ctx, "a", "acme", 0)
			e.submit(t, ctx, "b", "globex", 0)
			e.submit(t, ctx, "c", "globex", 0)
		},
		op: func(ctx context.Context, e *crashEnv) error {
			a := e.tasks["a"]
			_, err := e.sched.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
			return err
		},
	},
	{
		name: "heartbeat",
		prepare: func(t *testing.T, ctx context.Context, e *crashEnv) {
			e.submit(t, ctx, "a", "acme", 0)
			e.clock.Advance(crashLease / 2)
		},
		op: func(ctx context.Context, e *crashEnv) error {
			a := e.tasks["a"]
			_, err := e.sched.Heartbeat(ctx, core.HeartbeatRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease})
			return err
		},
	},
	{
		name: "cancel-running",
		prepare: func(t *testing.T, ctx context.Context, e *crashEnv) {
			e.submit(t, ctx, "a", "acme", 0)
			e.submit(t, ctx, "b", "globex", 0)
			e.submit(t, ctx, "c", "globex", 0)
		},
		op: func(ctx context.Context, e *crashEnv) error {
			_, err := e.sched.Cancel(ctx, "acme", e.tasks["a"].ID)
			return err
		},
	},
	{
		name: "cancel-parked",
		prepare: func(t *testing.T, ctx context.Context, e *crashEnv) {
			e.submit(t, ctx, "a", "acme", 0)
			e.submit(t, ctx, "b", "globex", 0)
			e.submit(t, ctx, "c", "globex", 0)
		},
		op: func(ctx context.Context, e *crashEnv) error {
			_, err := e.sched.Cancel(ctx, "globex", e.tasks["c"].ID)
			return err
		},
	},
	{
		// Every repair at once: a parked task past its deadline, two
		// lapsed leases, a parked task whose send failed (the outbox), and
		// one waiting for a slot.
		name: "sweep",
		prepare: func(t *testing.T, ctx context.Context, e *crashEnv) {
			e.submit(t, ctx, "a", "acme", 0)
			e.submit(t, ctx, "b", "globex", 0)
			e.submit(t, ctx, "c", "acme", 15*time.Second)
			e.inj.FailIf(func(op string) error {
				if op == "SQS.SendMessage" {
					return errors.New("injected send failure")
				}
				return nil
			})
			d := e.submit(t, ctx, "d", "globex", 0)
			e.inj.FailIf(nil)
			require.True(t, d.Unsent, "the failed send leaves the outbox flag")
			e.submit(t, ctx, "e", "acme", 0)
			e.clock.Advance(31 * time.Second) // past c's deadline, the leases and OutboxGrace
		},
		op: func(ctx context.Context, e *crashEnv) error {
			_, err := e.sched.Sweep(ctx)
			return err
		},
	},
}

// TestCrashPoints kills a process after each AWS call of each operation
// (every later call fails) and lets a fresh process's sweeper repair the
// state, then checks the table's own items: no task lost, no slot held
// past its lease, exactly one outcome each, never more running than the
// capacity.
func TestCrashPoints(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			all := true // every crash point ran (no -run filter left one out)
			for n := 0; n < maxCrashPoints; n++ {
				var dead, ran bool
				ok := t.Run(fmt.Sprintf("after-%d-calls", n), func(t *testing.T) {
					ran = true
					dead = crashAt(t, sc, n)
				})
				if !ran {
					all = false
					continue
				}
				if !ok || !dead {
					t.Logf("%s: %d crash points, plus the run without a crash", sc.name, n)
					if all {
						require.Positive(t, n, "the operation made AWS calls")
					}
					return
				}
			}
		})
	}
}

// crashAt runs sc with a process that dies after n AWS calls of the
// operation, repairs and checks. It reports whether the process died (the
// operation needed more than n calls).
func crashAt(t *testing.T, sc scenario, n int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed bound
	defer cancel()
	e := newCrashEnv(t, ctx)
	sc.prepare(t, ctx, e)
	e.inj.Arm(n)
	err := sc.op(ctx, e)
	dead := e.inj.Dead()
	calls, refused := e.inj.Calls()
	if !dead {
		require.NoError(t, err, "the operation without a crash")
	}
	t.Logf("died=%v after %v, refused %s; op error: %v", dead, calls, refused, err)
	crashedAt := e.clock.Now()
	checkTable(t, ctx, e, crashedAt, false)
	repair(t, ctx, e, crashedAt)
	return dead
}

// repair runs a fresh process's sweeper until every task is terminal:
// the clock moves past OutboxGrace and past the leases of running tasks
// (nobody completes them), never near a parked task's deadline; when only
// parked tasks remain that nothing could start, it waits in real time for
// SQS to make visible again the messages the dead process held.
func repair(t *testing.T, ctx context.Context, e *crashEnv, crashedAt time.Time) {
	ddb, sq := clean()
	st, err := e.newStore(ctx, ddb, sq)
	require.NoError(t, err)
	sched, err := core.New(core.Config{Backend: st, Clock: e.clock})
	require.NoError(t, err)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(20 * time.Second)
	for round := 0; ; round++ {
		tasks := checkTable(t, ctx, e, crashedAt, round > 0)
		running, parked := 0, 0
		for _, tk := range tasks {
			switch tk.State {
			case core.StateRunning:
				running++
			case core.StateParked:
				parked++
			}
		}
		if running+parked == 0 {
			break
		}
		switch {
		case round == 0 || running > 0:
			e.clock.Advance(max(crashLease, outboxGrace) + time.Second)
		default:
			select { // only parked tasks left: their messages may be held
			case <-tick.C:
			case <-giveUp:
				t.Fatalf("not repaired within 20s: %d parked, %d running\n%s", parked, running, describe(tasks))
			}
		}
		require.Less(t, e.clock.Now().Sub(crashedAt), crashWait-time.Minute, "the repair ran into the deadlines of parked tasks")
		_, err := sched.Sweep(ctx)
		require.NoError(t, err, "the fresh process's sweep")
	}
	checkOutcomes(t, ctx, e, st, crashedAt)
}

// checkTable reads every task item and the pool item and checks the
// invariants that hold at every instant: the pool's counters are the
// number of running and parked task items, at most the capacity run, and
// (after a sweep, swept) no task runs past its lease end.
func checkTable(t *testing.T, ctx context.Context, e *crashEnv, crashedAt time.Time, swept bool) []core.Task {
	t.Helper()
	ddb, sq := clean()
	st, err := e.newStore(ctx, ddb, sq)
	require.NoError(t, err)
	tasks := scanTasks(t, ctx, st, e.table)
	running, parked := 0, 0
	now := e.clock.Now()
	for _, tk := range tasks {
		switch tk.State {
		case core.StateRunning:
			running++
			if swept {
				require.True(t, tk.LeaseExpiresAt.After(now), "task %s holds its slot past its lease end %s (now %s)", tk.ID, tk.LeaseExpiresAt, now)
			}
		case core.StateParked:
			parked++
		}
	}
	p, err := st.Pool(ctx, "p")
	require.NoError(t, err)
	require.LessOrEqual(t, running, crashCapacity, "over capacity\n%s", describe(tasks))
	require.Equal(t, running, p.Running, "pool.running vs running task items\n%s", describe(tasks))
	require.Equal(t, parked, p.Parked, "pool.parked vs parked task items\n%s", describe(tasks))
	return tasks
}

// checkOutcomes checks every task's end: terminal, expired only if its
// deadline passed before the crash (a lost parked task would stay parked or
// expire later), exactly one outcome message of its state, a started
// message if and only if it started, and one audit event reaching its
// terminal state.
func checkOutcomes(t *testing.T, ctx context.Context, e *crashEnv, st *awsstore.Store, crashedAt time.Time) {
	tasks := scanTasks(t, ctx, st, e.table)
	for _, name := range slices.Sorted(maps.Keys(e.tasks)) {
		id := e.tasks[name].ID
		require.True(t, slices.ContainsFunc(tasks, func(tk core.Task) bool { return tk.ID == id }), "task %s (%s) is gone", name, id)
	}
	msgs := map[string][]core.Message{}
	events := map[string][]core.Event{}
	for _, tenant := range []string{"acme", "globex"} {
		ms, err := st.Messages(ctx, tenant, tenant, 0, core.MaxPageLimit)
		require.NoError(t, err)
		for _, m := range ms {
			msgs[m.TaskID] = append(msgs[m.TaskID], m)
		}
		evs, err := st.Events(ctx, core.AuditQuery{Tenant: tenant, From: t0.Add(-time.Hour), To: t0.Add(24 * time.Hour), Limit: core.MaxPageLimit})
		require.NoError(t, err)
		for _, ev := range evs {
			events[ev.TaskID] = append(events[ev.TaskID], ev)
		}
	}
	for _, tk := range tasks {
		require.True(t, tk.State.Terminal(), "task %s is %s", tk.ID, tk.State)
		if tk.State == core.StateExpired {
			require.False(t, tk.Deadline.After(crashedAt), "task %s expired although its deadline %s came after the crash at %s: it was lost", tk.ID, tk.Deadline, crashedAt)
		}
		var outcomes, starts []string
		for _, m := range msgs[tk.ID] {
			if m.Type == core.MessageStarted {
				starts = append(starts, string(m.Type))
			} else {
				outcomes = append(outcomes, string(m.Type))
			}
		}
		require.Equal(t, []string{string(tk.State)}, outcomes, "task %s: outcome messages", tk.ID)
		if tk.StartedAt.IsZero() {
			require.Empty(t, starts, "task %s never started", tk.ID)
		} else {
			require.Len(t, starts, 1, "task %s started once", tk.ID)
		}
		ends := 0
		for _, ev := range events[tk.ID] {
			if ev.To.Terminal() {
				ends++
				require.Equal(t, tk.State, ev.To, "task %s: audit", tk.ID)
			}
		}
		require.Equal(t, 1, ends, "task %s: one terminal audit event", tk.ID)
	}
	p, err := st.Pool(ctx, "p")
	require.NoError(t, err)
	require.Zero(t, p.Running)
	require.Zero(t, p.Parked)
}

// scanTasks reads every task item of the table (a Scan on the clean
// client, then the store's strongly consistent read of each).
func scanTasks(t *testing.T, ctx context.Context, st *awsstore.Store, table string) []core.Task {
	t.Helper()
	ddb, _ := clean()
	ex, err := expression.NewBuilder().
		WithFilter(expression.Name("sk").Equal(expression.Value("TASK"))).
		WithProjection(expression.NamesList(expression.Name("pk"))).Build()
	require.NoError(t, err)
	var tasks []core.Task
	p := dynamodb.NewScanPaginator(ddb, &dynamodb.ScanInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		FilterExpression: ex.Filter(), ProjectionExpression: ex.Projection(),
		ExpressionAttributeNames: ex.Names(), ExpressionAttributeValues: ex.Values(),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, it := range out.Items {
			var pk string
			require.NoError(t, attributevalue.Unmarshal(it["pk"], &pk))
			tk, err := st.Task(ctx, strings.TrimPrefix(pk, "TASK#"))
			require.NoError(t, err)
			tasks = append(tasks, tk)
		}
	}
	slices.SortFunc(tasks, func(a, b core.Task) int { return strings.Compare(a.ID, b.ID) })
	return tasks
}

func describe(tasks []core.Task) string {
	var b strings.Builder
	for _, tk := range tasks {
		fmt.Fprintf(&b, "  %s %s %s unsent=%v deadline=%s lease=%s\n", tk.ID, tk.Tenant, tk.State, tk.Unsent,
			tk.Deadline.Format(time.TimeOnly), tk.LeaseExpiresAt.Format(time.TimeOnly))
	}
	return b.String()
}
