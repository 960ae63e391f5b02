package coretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Property runs seeded random sequences of operations (submissions by
// several tenants to two pools with repeated idempotency keys, completions
// with right, wrong and repeated leases, heartbeats, cancels, clock
// advances, sweeps, dispatches and capacity changes) over newBackend wrapped
// in a FaultInjector that duplicates queue messages, loses some sends, and
// fails sends, deletes and commits after the fact (a crash between a write
// and the next step). After every step it compares the backend's state
// with a simple reference model and checks the invariants of the design from
// the backend's own items, messages and events, not from what core reports.
func Property(t *testing.T, newBackend func(t *testing.T, clock core.Clock) core.Backend) {
	t.Helper()
	seeds := []uint64{1, 2, 3, 4, 5, 6, uint64(time.Now().UnixNano())}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d (rerun with PropertySeed)", seed)
			PropertySeed(t, newBackend, seed, 200)
		})
	}
}

// PropertySeed runs one sequence of steps operations from seed.
func PropertySeed(t *testing.T, newBackend func(t *testing.T, clock core.Clock) core.Backend, seed uint64, steps int) {
	p := newProp(t, newBackend, seed)
	for i := range steps {
		p.step = i
		p.randomStep()
	}
	// (5) Past every deadline and lease, a sweep leaves nothing live.
	p.faults.SetConfig(FaultConfig{Seed: seed})
	p.clock.Advance(24 * time.Hour)
	p.now = p.clock.Now()
	st, err := p.s.Sweep(p.ctx)
	require.NoError(t, err)
	p.reconcile(true)
	p.checkInvariants(true)
	for _, id := range p.m.order {
		require.True(t, p.m.tasks[id].state.Terminal(), "task %s still %s after the final sweep", id, p.m.tasks[id].state)
	}
	t.Logf("%d steps, %d tasks, %d faults injected, final sweep %+v", steps, len(p.m.order), p.faults.Injected(), st)
}

var (
	propTenants    = []string{"acme", "globex", "initech"}
	propPools      = []string{"p1", "p2"}
	propRecipients = []string{"", "ops"}
	propPayloads   = []string{"", `{"n":1}`, `{"n":2}`}
	propWaits      = []time.Duration{0, time.Minute, 3 * time.Minute, 10 * time.Minute}
)

const (
	propMaxWait    = 5 * time.Minute
	propRunTimeout = 2 * time.Minute
)

type mTask struct {
	id, tenant, pool, recipient string
	state                       core.State
	lease                       string
	deadline, leaseEnd          time.Time
	runTimeout                  time.Duration
	result                      string
	errText                     string
}

type mBody struct {
	pool, recipient, payload string
	maxWait                  time.Duration
}

type mKey struct {
	id   string
	body mBody
}

type model struct {
	tasks     map[string]*mTask
	order     []string
	keys      map[string]mKey // tenant \x00 key
	capacity  map[string]int
	maxParked map[string]int
	// allowed is the most tasks a pool may run: its capacity, or more while
	// tasks started before a capacity cut still run.
	allowed map[string]int
}

func (m *model) count(pool string, st core.State) int {
	n := 0
	for _, id := range m.order {
		if t := m.tasks[id]; t.pool == pool && t.state == st {
			n++
		}
	}
	return n
}

type prop struct {
	t      *testing.T
	ctx    context.Context
	clock  *core.StubClock
	inner  core.Backend
	faults *FaultInjector
	s      *core.Scheduler
	rng    *rand.Rand
	m      *model
	now    time.Time
	step   int
}

func newProp(t *testing.T, newBackend NewBackend, seed uint64) *prop {
	clock := core.NewStubClock(T0)
	inner := newBackend(t, clock)
	faults := NewFaultInjector(inner, FaultConfig{Seed: seed, SendTwice: 0.2, SendFailsAfter: 0.15, SendLost: 0.1, ReceiveTwice: 0.25, DeleteFailsAfter: 0.15, CommitFailsAfter: 0.04})
	s, err := core.New(core.Config{
		Backend: faults, Clock: clock, OutboxGrace: 30 * time.Second,
		MailboxRetention: 365 * 24 * time.Hour, AuditRetention: 365 * 24 * time.Hour,
	})
	require.NoError(t, err)
	p := &prop{
		t: t, ctx: t.Context(), clock: clock, inner: inner, faults: faults, s: s,
		rng: rand.New(rand.NewPCG(seed, seed+1)),
		m: &model{
			tasks: map[string]*mTask{}, keys: map[string]mKey{},
			capacity: map[string]int{"p1": 2, "p2": 1}, maxParked: map[string]int{"p1": 4, "p2": 3},
			allowed: map[string]int{},
		},
		now: T0,
	}
	for _, name := range propPools {
		p.putPool(name, p.m.capacity[name])
	}
	return p
}

func (p *prop) putPool(name string, capacity int) {
	require.NoError(p.t, p.s.PutPool(p.ctx, core.PoolConfig{
		Name: name, Capacity: capacity, MaxParked: p.m.maxParked[name],
		DefaultMaxWait: propMaxWait, RunTimeout: propRunTimeout,
	}))
	p.m.capacity[name] = capacity
	p.m.allowed[name] = max(capacity, p.m.count(name, core.StateRunning))
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// pickTask returns a random known task, preferring running ones.
func (p *prop) pickTask() *mTask {
	if len(p.m.order) == 0 {
		return nil
	}
	if p.rng.IntN(3) > 0 {
		var running []*mTask
		for _, id := range p.m.order {
			if t := p.m.tasks[id]; t.state == core.StateRunning {
				running = append(running, t)
			}
		}
		if len(running) > 0 {
			return pick(p.rng, running)
		}
	}
	return p.m.tasks[pick(p.rng, p.m.order)]
}

func (p *prop) msg(format string, args ...any) string {
	return fmt.Sprintf("step %d: ", p.step) + fmt.Sprintf(format, args...)
}

func (p *prop) randomStep() {
	p.now = p.clock.Now()
	r := p.rng.IntN(100)
	switch {
	case r < 30:
		p.submit()
	case r < 50:
		p.complete()
	case r < 58:
		p.heartbeat()
	case r < 66:
		p.cancel()
	case r < 79:
		p.clock.Advance(time.Duration(1+p.rng.IntN(240)) * time.Second)
		p.now = p.clock.Now()
		p.reconcile(false)
		p.checkInvariants(false)
	case r < 87:
		commits := p.faults.CommitFaults()
		st, err := p.s.Sweep(p.ctx)
		require.True(p.t, applied(err), p.msg("sweep: %v", err))
		ch := p.reconcile(true)
		require.LessOrEqual(p.t, st.TimedOut, ch.timedOut, p.msg("sweep timed out %+v", st))
		require.LessOrEqual(p.t, st.Expired, ch.expired, p.msg("sweep expired %+v", st))
		// A sweep that reports no error, or whose only errors are failed
		// sends (their tasks count as lost), did all its work: it timed out
		// every lapsed lease itself and left no free slot beside a parked
		// task (invariant 4).
		complete := err == nil || p.faults.CommitFaults() == commits
		if complete {
			require.Equal(p.t, ch.timedOut, st.TimedOut, p.msg("sweep timed out %+v", st))
		}
		p.checkInvariants(complete)
	case r < 94:
		pool := pick(p.rng, propPools)
		faults := p.faults.CommitFaults()
		n, err := p.s.Dispatch(p.ctx, pool)
		require.True(p.t, applied(err), p.msg("dispatch: %v", err))
		ch := p.reconcile(true)
		require.LessOrEqual(p.t, n, ch.started)
		if p.faults.CommitFaults() == faults {
			require.Equal(p.t, ch.started, n, p.msg("dispatch %s reported %d starts", pool, n))
		}
		p.checkInvariants(false)
	case r < 97:
		p.putPool(pick(p.rng, propPools), 1+p.rng.IntN(3))
		p.reconcile(true)
		p.checkInvariants(false)
	default:
		p.otherTenant()
	}
}

func (p *prop) submit() {
	tenant := pick(p.rng, propTenants)
	body := mBody{pool: pick(p.rng, propPools), recipient: pick(p.rng, propRecipients), payload: pick(p.rng, propPayloads), maxWait: pick(p.rng, propWaits)}
	key := ""
	if p.rng.IntN(10) < 4 {
		key = pick(p.rng, []string{"k1", "k2"})
	}
	req := core.SubmitRequest{Tenant: tenant, Pool: body.pool, Key: key, Recipient: body.recipient, MaxWait: body.maxWait}
	if body.payload != "" {
		req.Payload = json.RawMessage(body.payload)
	}
	if body.recipient == "" {
		body.recipient = tenant
	}
	res, err := p.s.Submit(p.ctx, req)

	if prev, ok := p.m.keys[tenant+"\x00"+key]; key != "" && ok {
		if prev.body != body {
			require.ErrorIs(p.t, err, core.ErrKeyConflict, p.msg("key %s reused with another body", key))
		} else {
			require.NoError(p.t, err, p.msg("replay of key %s", key))
			require.True(p.t, res.Replayed)
			require.Equal(p.t, prev.id, res.Task.ID, p.msg("replay of key %s", key))
			require.Equal(p.t, p.m.tasks[prev.id].state, res.Task.State)
		}
		p.reconcile(false)
		p.checkInvariants(false)
		return
	}

	running, parked := p.m.count(body.pool, core.StateRunning), p.m.count(body.pool, core.StateParked)
	want := core.StateRejected
	switch {
	case running < p.m.capacity[body.pool] && parked == 0:
		want = core.StateRunning
	case parked < p.m.maxParked[body.pool]:
		want = core.StateParked
	}
	task := res.Task
	switch {
	case errors.Is(err, ErrInjected):
		// The commit took effect; its submitter did not learn of it.
		task = p.adopt(tenant)
	case want == core.StateRejected:
		require.ErrorIs(p.t, err, core.ErrPoolFull, p.msg("submit to full %s", body.pool))
	default:
		require.NoError(p.t, err, p.msg("submit to %s", body.pool))
	}
	require.Equal(p.t, want, task.State, p.msg("submit to %s with %d running, %d parked", body.pool, running, parked))
	require.False(p.t, res.Replayed)
	wait := body.maxWait
	if wait == 0 {
		wait = propMaxWait
	}
	mt := &mTask{
		id: task.ID, tenant: tenant, pool: body.pool, recipient: body.recipient, state: want,
		deadline: p.now.Add(wait), runTimeout: propRunTimeout,
	}
	require.True(p.t, task.Deadline.Equal(mt.deadline))
	if want == core.StateRunning {
		require.NotEmpty(p.t, task.Lease)
		mt.lease = task.Lease
		mt.leaseEnd = p.now.Add(propRunTimeout)
	}
	_, known := p.m.tasks[task.ID]
	require.False(p.t, known, p.msg("task id %s reused", task.ID))
	p.m.tasks[task.ID] = mt
	p.m.order = append(p.m.order, task.ID)
	if key != "" {
		p.m.keys[tenant+"\x00"+key] = mKey{id: task.ID, body: body}
	}
	p.reconcile(true)
	p.checkInvariants(false)
}

// adopt returns the one task of tenant that the audit trail shows and the
// model does not know: the task of a submission whose commit took effect
// although the submitter was told it failed.
func (p *prop) adopt(tenant string) core.Task {
	var found []string
	for _, e := range allEvents(p.t, p.ctx, p.inner, core.AuditQuery{Tenant: tenant, From: T0.Add(-time.Hour), To: p.now.Add(time.Hour)}) {
		if _, ok := p.m.tasks[e.TaskID]; !ok && !slices.Contains(found, e.TaskID) {
			found = append(found, e.TaskID)
		}
	}
	require.Len(p.t, found, 1, p.msg("tasks of a failed submission"))
	task, err := p.inner.Task(p.ctx, found[0])
	require.NoError(p.t, err)
	return task
}

// applied reports whether err says that the operation took effect: no
// error, or an injected failure after the commit.
func applied(err error) bool { return err == nil || errors.Is(err, ErrInjected) }

func (p *prop) lease(mt *mTask) string {
	if mt.lease != "" && p.rng.IntN(5) > 0 {
		return mt.lease
	}
	return fmt.Sprintf("forged-%d", p.rng.Uint64())
}

func (p *prop) complete() {
	mt := p.pickTask()
	if mt == nil {
		return
	}
	lease := p.lease(mt)
	status := pick(p.rng, []core.State{core.StateSucceeded, core.StateFailed})
	result := pick(p.rng, propPayloads)
	req := core.CompleteRequest{Tenant: mt.tenant, TaskID: mt.id, Lease: lease, Status: status}
	if result != "" {
		req.Result = json.RawMessage(result)
	}
	if status == core.StateFailed {
		req.Error = fmt.Sprintf("error %d", p.step)
	}
	got, err := p.s.Complete(p.ctx, req)
	switch {
	case lease != mt.lease:
		require.ErrorIs(p.t, err, core.ErrLeaseLost, p.msg("complete %s with a forged lease", mt.id))
	case mt.state == status:
		require.NoError(p.t, err, p.msg("repeated completion of %s", mt.id))
		require.Equal(p.t, status, got.State)
	case mt.state != core.StateRunning:
		require.ErrorIs(p.t, err, core.ErrLeaseLost, p.msg("complete %s in state %s", mt.id, mt.state))
	case !p.now.Before(mt.leaseEnd):
		require.ErrorIs(p.t, err, core.ErrLeaseLost, p.msg("complete %s after its lease", mt.id))
		mt.state = core.StateTimedOut
	default:
		require.True(p.t, applied(err), p.msg("complete %s: %v", mt.id, err))
		if err == nil {
			require.Equal(p.t, status, got.State)
		}
		mt.state = status
		mt.result = result
		mt.errText = req.Error
	}
	p.reconcile(true)
	p.checkInvariants(false)
}

func (p *prop) heartbeat() {
	mt := p.pickTask()
	if mt == nil {
		return
	}
	lease := p.lease(mt)
	ext := pick(p.rng, []time.Duration{0, 30 * time.Second, 5 * time.Minute})
	end, err := p.s.Heartbeat(p.ctx, core.HeartbeatRequest{Tenant: mt.tenant, TaskID: mt.id, Lease: lease, Extend: ext})
	switch {
	case lease != mt.lease || mt.state != core.StateRunning:
		require.ErrorIs(p.t, err, core.ErrLeaseLost, p.msg("heartbeat %s (%s)", mt.id, mt.state))
	case !p.now.Before(mt.leaseEnd):
		require.ErrorIs(p.t, err, core.ErrLeaseLost, p.msg("heartbeat %s after its lease", mt.id))
		mt.state = core.StateTimedOut
	default:
		require.True(p.t, applied(err), p.msg("heartbeat %s: %v", mt.id, err))
		if ext == 0 {
			ext = mt.runTimeout
		}
		if err == nil {
			require.True(p.t, end.Equal(p.now.Add(ext)), p.msg("heartbeat end %s", end))
		}
		mt.leaseEnd = p.now.Add(ext)
	}
	p.reconcile(true)
	p.checkInvariants(false)
}

func (p *prop) cancel() {
	mt := p.pickTask()
	if mt == nil {
		return
	}
	got, err := p.s.Cancel(p.ctx, mt.tenant, mt.id)
	switch mt.state {
	case core.StateParked, core.StateRunning:
		require.True(p.t, applied(err), p.msg("cancel %s (%s): %v", mt.id, mt.state, err))
		if err == nil {
			require.Equal(p.t, core.StateCancelled, got.State)
		}
		mt.state = core.StateCancelled
	case core.StateCancelled:
		require.NoError(p.t, err, p.msg("cancel %s (%s)", mt.id, mt.state))
		require.Equal(p.t, core.StateCancelled, got.State)
	default:
		require.ErrorIs(p.t, err, core.ErrInvalidState, p.msg("cancel %s (%s)", mt.id, mt.state))
	}
	p.reconcile(true)
	p.checkInvariants(false)
}

// otherTenant acts on a task as another tenant: nothing is found, nothing
// changes.
func (p *prop) otherTenant() {
	mt := p.pickTask()
	if mt == nil {
		return
	}
	other := pick(p.rng, propTenants)
	for other == mt.tenant {
		other = pick(p.rng, propTenants)
	}
	_, err := p.s.Task(p.ctx, other, mt.id)
	require.ErrorIs(p.t, err, core.ErrNotFound)
	_, err = p.s.Cancel(p.ctx, other, mt.id)
	require.ErrorIs(p.t, err, core.ErrNotFound)
	if mt.lease != "" {
		_, err = p.s.Complete(p.ctx, core.CompleteRequest{Tenant: other, TaskID: mt.id, Lease: mt.lease, Status: core.StateSucceeded})
		require.ErrorIs(p.t, err, core.ErrNotFound)
		_, err = p.s.Heartbeat(p.ctx, core.HeartbeatRequest{Tenant: other, TaskID: mt.id, Lease: mt.lease})
		require.ErrorIs(p.t, err, core.ErrNotFound)
	}
	p.reconcile(false)
	p.checkInvariants(false)
}

// changes counts the transitions that reconcile accepted beyond the ones
// the step's own operation explains.
type changes struct {
	started, expired, timedOut int
}

// reconcile compares every task item with the model. A step that may wake
// (mayWake) may also start parked tasks before their deadline, expire parked
// tasks past it, and time out running tasks past their lease end; nothing
// else may differ from the model.
func (p *prop) reconcile(mayWake bool) changes {
	var ch changes
	for _, id := range p.m.order {
		mt := p.m.tasks[id]
		bt, err := p.inner.Task(p.ctx, id)
		require.NoError(p.t, err, p.msg("read %s", id))
		require.Equal(p.t, mt.tenant, bt.Tenant)
		require.Equal(p.t, mt.pool, bt.Pool)
		require.Equal(p.t, mt.recipient, bt.Recipient)
		if bt.State == mt.state {
			if mt.state == core.StateRunning {
				require.Equal(p.t, mt.lease, bt.Lease, p.msg("lease of %s changed", id))
				require.True(p.t, mt.leaseEnd.Equal(bt.LeaseExpiresAt), p.msg("lease end of %s: model %s, backend %s", id, mt.leaseEnd, bt.LeaseExpiresAt))
			}
			if mt.state.Terminal() && (mt.state == core.StateSucceeded || mt.state == core.StateFailed) {
				require.Equal(p.t, mt.errText, bt.Error)
				requireJSON(p.t, mt.result, bt.Result)
			}
			continue
		}
		require.True(p.t, mayWake, p.msg("task %s moved from %s to %s in a step that moves nothing", id, mt.state, bt.State))
		switch {
		case mt.state == core.StateParked && bt.State == core.StateRunning:
			require.True(p.t, bt.StartedAt.Equal(p.now), p.msg("%s started at %s, now %s", id, bt.StartedAt, p.now))
			require.True(p.t, p.now.Before(mt.deadline), p.msg("%s started at or after its deadline", id))
			require.NotEmpty(p.t, bt.Lease)
			require.True(p.t, bt.LeaseExpiresAt.Equal(p.now.Add(mt.runTimeout)))
			mt.state, mt.lease, mt.leaseEnd = core.StateRunning, bt.Lease, bt.LeaseExpiresAt
			ch.started++
		case mt.state == core.StateParked && bt.State == core.StateExpired:
			require.False(p.t, p.now.Before(mt.deadline), p.msg("%s expired before its deadline", id))
			mt.state = core.StateExpired
			ch.expired++
		case mt.state == core.StateRunning && bt.State == core.StateTimedOut:
			require.False(p.t, p.now.Before(mt.leaseEnd), p.msg("%s timed out before its lease end", id))
			mt.state = core.StateTimedOut
			ch.timedOut++
		default:
			p.t.Fatalf("%s", p.msg("task %s moved from %s to %s unexplained", id, mt.state, bt.State))
		}
	}
	return ch
}

func requireJSON(t *testing.T, want string, got json.RawMessage) {
	t.Helper()
	if want == "" {
		require.Empty(t, got)
		return
	}
	require.JSONEq(t, want, string(got))
}

// checkInvariants checks the design's invariants from the backend's own
// state. afterSweep adds invariant 4, which holds once a sweep has run.
func (p *prop) checkInvariants(afterSweep bool) {
	t := p.t
	tasks := map[string]core.Task{}
	for _, id := range p.m.order {
		bt, err := p.inner.Task(p.ctx, id)
		require.NoError(t, err)
		tasks[id] = bt
	}
	// (6) and (7): every task's events form one chain from submission to
	// its current state, in its own tenant's trail only. The trails also
	// reveal any task the model does not know of.
	for _, tenant := range propTenants {
		evs := allEvents(t, p.ctx, p.inner, core.AuditQuery{Tenant: tenant, From: T0.Add(-time.Hour), To: p.now.Add(time.Hour)})
		chains := map[string][]core.Event{}
		for _, e := range evs {
			require.Equal(t, tenant, e.Tenant)
			bt, ok := tasks[e.TaskID]
			require.True(t, ok, p.msg("audit names unknown task %s", e.TaskID))
			require.Equal(t, tenant, bt.Tenant, p.msg("event of %s in %s's trail", e.TaskID, tenant))
			require.Equal(t, bt.Pool, e.Pool)
			chains[e.TaskID] = append(chains[e.TaskID], e)
		}
		for id, bt := range tasks {
			if bt.Tenant != tenant {
				continue
			}
			chain := chains[id]
			require.NotEmpty(t, chain, p.msg("task %s has no events", id))
			require.Equal(t, core.State(""), chain[0].From, p.msg("first event of %s", id))
			for i := 1; i < len(chain); i++ {
				require.Equal(t, chain[i-1].To, chain[i].From, p.msg("broken audit chain of %s: %+v", id, chain))
			}
			require.Equal(t, bt.State, chain[len(chain)-1].To, p.msg("audit of %s ends in %s, task is %s", id, chain[len(chain)-1].To, bt.State))
		}
	}

	// (2) exactly one outcome per terminal task, none for live ones, one
	// started message per start; (7) mailboxes hold their tenant's only.
	outcomes := map[string][]core.Message{}
	starts := map[string][]core.Message{}
	for _, tenant := range propTenants {
		for _, r := range propRecipients {
			if r == "" {
				r = tenant
			}
			for _, m := range allMessages(t, p.ctx, p.inner, tenant, r) {
				require.Equal(t, tenant, m.Tenant)
				require.Equal(t, r, m.Recipient)
				bt, ok := tasks[m.TaskID]
				require.True(t, ok, p.msg("message for unknown task %s", m.TaskID))
				require.Equal(t, tenant, bt.Tenant, p.msg("message of %s in %s's mailbox", m.TaskID, tenant))
				require.Equal(t, r, bt.Recipient)
				if m.Type == core.MessageStarted {
					starts[m.TaskID] = append(starts[m.TaskID], m)
				} else {
					outcomes[m.TaskID] = append(outcomes[m.TaskID], m)
				}
			}
		}
	}
	for id, bt := range tasks {
		if bt.State.Terminal() {
			require.Len(t, outcomes[id], 1, p.msg("outcome messages of %s (%s)", id, bt.State))
			m := outcomes[id][0]
			require.Equal(t, core.MessageType(bt.State), m.Type, p.msg("outcome of %s", id))
			require.Equal(t, bt.Error, m.Error)
			require.True(t, bytes.Equal(bt.Result, m.Result) || len(bt.Result) == 0 && len(m.Result) == 0)
		} else {
			require.Empty(t, outcomes[id], p.msg("outcome for live task %s (%s)", id, bt.State))
		}
		if p.faults.Lost(id) && bt.State == core.StateParked {
			require.True(t, bt.Unsent, p.msg("%s: its queue message was lost, yet it is not flagged Unsent", id))
		}
		if bt.StartedAt.IsZero() {
			require.Empty(t, starts[id], p.msg("started message for unstarted %s", id))
		} else {
			require.Len(t, starts[id], 1, p.msg("started messages of %s", id))
			require.Equal(t, bt.Lease, starts[id][0].Lease)
			// (3) no start at or after the deadline.
			require.True(t, bt.StartedAt.Before(bt.Deadline), p.msg("%s started at %s, deadline %s", id, bt.StartedAt, bt.Deadline))
		}
	}

	// (1) hard capacity, and counters equal to the items.
	for _, name := range propPools {
		running, parked := 0, 0
		for _, bt := range tasks {
			if bt.Pool != name {
				continue
			}
			switch bt.State {
			case core.StateRunning:
				running++
			case core.StateParked:
				parked++
			}
		}
		pool, err := p.inner.Pool(p.ctx, name)
		require.NoError(t, err)
		require.Equal(t, running, pool.Running, p.msg("pool %s running counter", name))
		require.Equal(t, parked, pool.Parked, p.msg("pool %s parked counter", name))
		require.LessOrEqual(t, running, p.m.allowed[name], p.msg("pool %s over capacity %d", name, pool.Capacity))
		p.m.allowed[name] = max(pool.Capacity, min(p.m.allowed[name], running))

		// (4) after a sweep, a free slot leaves no parked live task.
		if afterSweep && running < pool.Capacity {
			for id, bt := range tasks {
				// A task whose queue message was lost waits, flagged Unsent,
				// for a sweep past the outbox grace to send it again.
				if bt.Pool == name && bt.State == core.StateParked && p.now.Before(bt.Deadline) && !p.faults.Lost(id) {
					t.Fatalf("%s", p.msg("pool %s has %d/%d running after a sweep, yet %s is parked", name, running, pool.Capacity, id))
				}
			}
		}
	}
}
