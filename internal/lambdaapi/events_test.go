package lambdaapi_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/core"
)

func (b *bundle) invokeSQS(t *testing.T, payload []byte) []string {
	t.Helper()
	out, err := b.fns[lambdaapi.Submit].Invoke(context.Background(), payload)
	require.NoError(t, err)
	var res events.SQSEventResponse
	require.NoError(t, json.Unmarshal(out, &res))
	ids := []string{}
	for _, f := range res.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// taskOfKey returns the task that tenant's key created.
func (b *bundle) taskOfKey(t *testing.T, tenant, key string) (core.Task, bool) {
	t.Helper()
	ctx := context.Background()
	rec, err := b.store.Key(ctx, tenant, key)
	if err != nil {
		require.ErrorIs(t, err, core.ErrNotFound)
		return core.Task{}, false
	}
	task, err := b.store.Task(ctx, rec.TaskID)
	require.NoError(t, err)
	return task, true
}

func (b *bundle) pool(t *testing.T, name string) core.PoolStats {
	t.Helper()
	p, err := b.sched.Pool(context.Background(), name)
	require.NoError(t, err)
	return p
}

// outcomes returns the types of the messages of acme's mailbox rcpt.
func (b *bundle) messageTypes(t *testing.T, tenant, rcpt string) map[string][]string {
	t.Helper()
	page, err := b.sched.Mailbox(context.Background(), core.MailboxRequest{Tenant: tenant, Recipient: rcpt, Limit: core.MaxPageLimit})
	require.NoError(t, err)
	out := map[string][]string{}
	for _, m := range page.Messages {
		out[m.TaskID] = append(out[m.TaskID], string(m.Type))
	}
	return out
}

const (
	sqsA = "2e1424d4-f796-459a-8184-9c92662be6da"
	sqsB = "2e1424d4-f796-459a-8184-9c92662be6db"
	sqsC = "2e1424d4-f796-459a-8184-9c92662be6dc"
	sqsD = "2e1424d4-f796-459a-8184-9c92662be6dd"
	sqsE = "2e1424d4-f796-459a-8184-9c92662be6de"
)

// TestSQSPartialBatchFailures: in one batch, the messages without a tenant,
// with an invalid body or an unknown pool fail; the others are submitted,
// and a redelivery of the whole batch submits nothing twice.
func TestSQSPartialBatchFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	payload := fixture(t, "sqs-submit.json")
	require.Equal(t, []string{sqsB, sqsC, sqsD}, b.invokeSQS(t, payload))

	a, ok := b.taskOfKey(t, "acme", "sqs:"+sqsA)
	require.True(t, ok, "a message without a key is keyed by its message id")
	require.Equal(t, core.StateRunning, a.State)
	require.Equal(t, "worker-1", a.Recipient)
	require.JSONEq(t, `{"n":1}`, string(a.Payload))
	e, ok := b.taskOfKey(t, "acme", "order-5")
	require.True(t, ok, "a message's own key is kept")
	require.Equal(t, core.StateParked, e.State)
	_, ok = b.taskOfKey(t, "acme", "sqs:"+sqsC)
	require.False(t, ok)
	require.Equal(t, core.PoolStats{Name: "gpu", Capacity: 1, Running: 1, Parked: 1, MaxParked: 1}, b.pool(t, "gpu"))

	// Redelivered: the same failures, and the same two tasks.
	require.Equal(t, []string{sqsB, sqsC, sqsD}, b.invokeSQS(t, payload))
	again, _ := b.taskOfKey(t, "acme", "sqs:"+sqsA)
	require.Equal(t, a.ID, again.ID)
	require.Equal(t, core.PoolStats{Name: "gpu", Capacity: 1, Running: 1, Parked: 1, MaxParked: 1}, b.pool(t, "gpu"))
	require.Equal(t, map[string][]string{a.ID: {"started"}}, b.messageTypes(t, "acme", "worker-1"))

	// A new message finds the parked depth full: rejected, with the outcome
	// in the mailbox, and the message is done (not failed).
	var ev events.SQSEvent
	require.NoError(t, json.Unmarshal(payload, &ev))
	ev.Records = ev.Records[:1]
	ev.Records[0].MessageId = "new-message"
	next, err := json.Marshal(ev)
	require.NoError(t, err)
	require.Empty(t, b.invokeSQS(t, next))
	rej, ok := b.taskOfKey(t, "acme", "sqs:new-message")
	require.True(t, ok)
	require.Equal(t, core.StateRejected, rej.State)
	require.Equal(t, []string{"rejected"}, b.messageTypes(t, "acme", "worker-1")[rej.ID])

	subs := withMetric(b.emf.lines(t), "EventSubmissions")
	require.Len(t, subs, 3)
	require.Equal(t, 5.0, subs[0]["EventSubmissions"])
	require.Equal(t, 3.0, subs[0]["EventSubmissionFailures"])
}

// TestSQSFIFOStopsAtFirstFailure: on a FIFO queue, the messages after a
// failed one are reported failed too, unprocessed, so that order holds.
func TestSQSFIFOStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, []string{"f2", "f3"}, b.invokeSQS(t, fixture(t, "sqs-submit-fifo.json")))
	_, ok := b.taskOfKey(t, "acme", "sqs:f1")
	require.True(t, ok)
	_, ok = b.taskOfKey(t, "acme", "sqs:f3")
	require.False(t, ok, "a message after the failure is not processed")
}

func TestEventBridgeSubmission(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	payload := fixture(t, "eventbridge-submit.json")
	_, err := b.fns[lambdaapi.Submit].Invoke(ctx, payload)
	require.NoError(t, err)
	task, ok := b.taskOfKey(t, "acme", "event:6a7e8feb-b491-4cf7-a9f1-bf3703467718")
	require.True(t, ok)
	require.Equal(t, "acme", task.Tenant, "the tenant is the source's")
	require.Equal(t, "gpu", task.Pool)
	require.JSONEq(t, `{"order":42}`, string(task.Payload))
	require.True(t, task.Deadline.Equal(epoch.Add(5*time.Minute)))

	// A redelivery replays it.
	_, err = b.fns[lambdaapi.Submit].Invoke(ctx, payload)
	require.NoError(t, err)
	require.Equal(t, 1, b.pool(t, "gpu").Running)
	require.Equal(t, 0, b.pool(t, "gpu").Parked)

	_, err = b.fns[lambdaapi.Submit].Invoke(ctx, fixture(t, "eventbridge-submit-unknown-source.json"))
	require.ErrorIs(t, err, lambdaapi.ErrNoTenant)

	bad := func(detail string) []byte {
		var ev map[string]any
		require.NoError(t, json.Unmarshal(payload, &ev))
		ev["id"] = "other-" + detail
		ev["detail"] = json.RawMessage(detail)
		out, err := json.Marshal(ev)
		require.NoError(t, err)
		return out
	}
	for detail, want := range map[string]error{
		`{"pool":"gpu","request":{"tenant":"globex"}}`: lambdaapi.ErrRefused,
		`{"pool":"gpu","request":{"maxWait":"x"}}`:     lambdaapi.ErrRefused,
		`{"pool":"nope","request":{}}`:                 lambdaapi.ErrRefused,
		`{"pool":"gpu","extra":1}`:                     lambdaapi.ErrRefused,
		`{"request":{}}`:                               lambdaapi.ErrNoPool,
	} {
		_, err := b.fns[lambdaapi.Submit].Invoke(ctx, bad(detail))
		require.ErrorIs(t, err, want, detail)
	}
	// Parked depth: one parks, the next is rejected without an error.
	_, err = b.fns[lambdaapi.Submit].Invoke(ctx, bad(`{"pool":"gpu","request":{"recipient":"r"}}`))
	require.NoError(t, err)
	_, err = b.fns[lambdaapi.Submit].Invoke(ctx, bad(`{"pool":"gpu","request":{"recipient":"r","payload":2}}`))
	require.NoError(t, err)
	require.Equal(t, core.PoolStats{Name: "gpu", Capacity: 1, Running: 1, Parked: 1, MaxParked: 1}, b.pool(t, "gpu"))
	var types []string
	for _, ts := range b.messageTypes(t, "acme", "r") {
		types = append(types, ts...)
	}
	require.Equal(t, []string{"rejected"}, types)
}

// TestExpireSchedule: the scheduled event expires parked tasks past their
// deadline, times out lapsed leases (waking parked work) and reports pool
// gauges.
func TestExpireSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	run, err := b.sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu", RunTimeout: 30 * time.Second})
	require.NoError(t, err)
	parked, err := b.sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu", MaxWait: 10 * time.Second})
	require.NoError(t, err)
	require.Equal(t, core.StateParked, parked.Task.State)
	later, err := b.sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "cpu", RunTimeout: time.Hour})
	require.NoError(t, err)

	b.clock.Advance(20 * time.Second)
	_, err = b.fns[lambdaapi.Expire].Invoke(ctx, fixture(t, "eventbridge-scheduled.json"))
	require.NoError(t, err)
	got, err := b.store.Task(ctx, parked.Task.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateExpired, got.State)
	got, err = b.store.Task(ctx, run.Task.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, got.State, "its lease runs 30s")

	b.clock.Advance(20 * time.Second)
	_, err = b.fns[lambdaapi.Expire].Invoke(ctx, fixture(t, "eventbridge-scheduled.json"))
	require.NoError(t, err)
	got, err = b.store.Task(ctx, run.Task.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateTimedOut, got.State)
	got, err = b.store.Task(ctx, later.Task.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, got.State)

	lines := b.emf.lines(t)
	sweeps := withMetric(lines, "Sweeps")
	require.Len(t, sweeps, 2)
	require.Equal(t, 1.0, sweeps[0]["Expired"])
	require.Equal(t, 0.0, sweeps[0]["TimedOut"])
	require.Equal(t, 1.0, sweeps[1]["TimedOut"])
	gauges := withMetric(lines, "PoolSaturation")
	require.Len(t, gauges, 4, "two pools, two sweeps")
	last := map[string]map[string]any{}
	for _, g := range gauges {
		last[g["Pool"].(string)] = g
	}
	require.Equal(t, 25.0, last["cpu"]["PoolSaturation"])
	require.Equal(t, 0.0, last["gpu"]["PoolRunning"])
	outcomes := withMetric(lines, "Outcomes")
	var kinds []string
	for _, o := range outcomes {
		kinds = append(kinds, o["Outcome"].(string))
	}
	require.Equal(t, []string{"expired", "timed_out"}, kinds)
}

// TestExpireRepeats: with SweepEvery, one invocation sweeps several times,
// within SweepFor.
func TestExpireRepeats(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *lambdaapi.Config) {
		c.SweepEvery = 20 * time.Millisecond
		c.SweepFor = 70 * time.Millisecond
	})
	_, err := b.fns[lambdaapi.Expire].Invoke(context.Background(), fixture(t, "eventbridge-scheduled.json"))
	require.NoError(t, err)
	n := len(withMetric(b.emf.lines(t), "Sweeps"))
	require.GreaterOrEqual(t, n, 2)
	require.LessOrEqual(t, n, 4)

	// A deadline near at hand stops the repeats after the first sweep.
	b2 := setup(t, func(c *lambdaapi.Config) {
		c.SweepEvery = time.Second
		c.SweepFor = time.Minute
	})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err = b2.fns[lambdaapi.Expire].Invoke(ctx, fixture(t, "eventbridge-scheduled.json"))
	require.NoError(t, err)
	require.Len(t, withMetric(b2.emf.lines(t), "Sweeps"), 1)
}
