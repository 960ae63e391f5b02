package awsstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// callLog records the AWS calls made, in the order they began, as
// "Service.Operation", with the kind of item a GetItem reads ("DynamoDB.GetItem
// TASK"), and when each began and returned. A call armed with hold waits,
// before it is sent, until a call of another name has begun: two calls
// that the code makes at once are then seen at once, on a machine of any
// speed, while calls made one after the other are seen so after a long
// wait.
type callLog struct {
	mu    sync.Mutex
	calls []call
	hold  *callHold
	// latency, if set, is how long each call waits before it is sent, on
	// top of moto's own time: a network's round trip (BenchmarkWakePath).
	latency func(name string) time.Duration
}

type call struct {
	name       string
	begun, end time.Time
}

// callHold holds the next call named name until one named until begins.
type callHold struct {
	name, until string
	begun       chan struct{} // closed when the call named until begins
	held        bool          // the call named name came
}

// holdLimit bounds a hold: calls made one after the other wait this long.
const holdLimit = 20 * time.Second

func (c *callLog) register(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("test.callLog",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				name := awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
				if g, ok := in.Parameters.(*dynamodb.GetItemInput); ok {
					if pk, ok := g.Key["pk"].(*types.AttributeValueMemberS); ok {
						kind, _, _ := strings.Cut(pk.Value, "#")
						name += " " + kind
					}
				}
				c.mu.Lock()
				i := len(c.calls)
				c.calls = append(c.calls, call{name: name, begun: time.Now()})
				h, latency := c.hold, c.latency
				var wait <-chan struct{}
				switch {
				case h == nil:
				case h.name == name && !h.held:
					h.held = true
					wait = h.begun
				case h.until == name:
					c.hold = nil
					close(h.begun)
				}
				c.mu.Unlock()
				if wait != nil {
					select {
					case <-wait:
					case <-time.After(holdLimit):
					}
				}
				if latency != nil {
					time.Sleep(latency(name))
				}
				out, md, err := next.HandleInitialize(ctx, in)
				c.mu.Lock()
				c.calls[i].end = time.Now()
				c.mu.Unlock()
				return out, md, err
			}), middleware.Before)
	})
}

// holdUntil arms a hold: the next call named name waits until one named
// until begins (or holdLimit passes).
func (c *callLog) holdUntil(name, until string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = &callHold{name: name, until: until, begun: make(chan struct{})}
}

// since returns the calls recorded after the first n, by name.
func (c *callLog) since(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, k := range c.calls[n:] {
		names = append(names, k.name)
	}
	return names
}

// depthsSince returns the calls recorded after the first n, each as
// "<depth> <name>", sorted: a call's depth is 1 plus the greatest depth of
// the calls that returned before it began, so the depth of a call is the
// number of round trips, one after the other, up to and including it.
func (c *callLog) depthsSince(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls[n:]
	depth := make([]int, len(calls))
	var out []string
	for i, k := range calls { // in the order they began
		depth[i] = 1
		for j := range i {
			if !calls[j].end.IsZero() && !calls[j].end.After(k.begun) {
				depth[i] = max(depth[i], depth[j]+1)
			}
		}
		out = append(out, fmt.Sprintf("%d %s", depth[i], k.name))
	}
	slices.Sort(out)
	return out
}

func (c *callLog) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// TestWakePathCalls records the AWS calls of a completion with a task
// parked behind it, each with its depth: how many round trips, one after
// the other, lead to it and include it. From the request to the next
// task's start committed, 2: the completing task's read and ReceiveMessage
// at once (the lease names the pool, and the releasing process read the
// pool within Config.PoolHintAge), whose message carries the parked task,
// then the one TransactWriteItems that ends one task and starts the other.
// Without a recent pool read, the pool is read alongside the task: 3. A
// task too large for its message to carry it (SQS bills each 64 KiB) is
// read. The completing task's read is held until the call expected
// alongside it begins, so that calls made at once are seen at once on a
// busy machine.
func TestWakePathCalls(t *testing.T) {
	t.Parallel()
	large := []byte(`{"blob":"` + strings.Repeat("x", 60<<10) + `"}`)
	const (
		task    = "DynamoDB.GetItem TASK"
		pool    = "DynamoDB.GetItem POOL"
		receive = "SQS.ReceiveMessage"
		commit  = "DynamoDB.TransactWriteItems"
		del     = "SQS.DeleteMessage"
	)
	for _, tc := range []struct {
		name    string
		hintAge time.Duration
		fresh   bool // completed by a process that has not read the pool
		payload []byte
		with    string // the call made alongside the task's read
		want    []string
	}{
		{"pool read recently", time.Hour, false, nil, receive, []string{
			"1 " + task, "1 " + receive, // at once
			"2 " + commit,
			"3 " + del, "4 " + pool, // after the commit: the dispatch that follows a hand-off
		}},
		{"large payload", time.Hour, false, large, receive, []string{
			"1 " + task, "1 " + receive,
			"2 " + task, // the parked task: its message does not carry it
			"3 " + commit,
			"4 " + del, "5 " + pool,
		}},
		{"pool not read recently", time.Hour, true, nil, pool, []string{
			"1 " + task, "1 " + pool,
			"2 " + receive,
			"3 " + commit,
			"4 " + del, "5 " + pool,
		}},
		{"no pool hints", -1, false, nil, "", []string{
			"1 " + task,
			"2 " + pool,
			"3 " + receive,
			"4 " + commit,
			"5 " + del, "6 " + pool,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := testCtx(t)
			s, err := core.New(core.Config{Backend: b.store, Clock: core.NewStubClock(t0), PoolHintAge: tc.hintAge})
			require.NoError(t, err)
			require.NoError(t, s.PutPool(ctx, poolCfg("gpu", 1, 10)))
			payload := tc.payload
			if payload == nil {
				payload = []byte(`{"job":42}`)
			}
			submit := func() core.Task {
				res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu", Payload: payload})
				require.NoError(t, err)
				return res.Task
			}
			complete := func(tk core.Task) {
				_, err := s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: tk.ID, Lease: tk.Lease, Status: core.StateSucceeded})
				require.NoError(t, err)
			}
			// Warm up the queue URL and the mailbox sequence.
			first := submit()
			complete(first)

			a := submit()
			require.Equal(t, core.StateRunning, a.State)
			parked := submit()
			require.Equal(t, core.StateParked, parked.State)

			completer := s
			if tc.fresh {
				// Another process, which has not read the pool.
				completer, err = core.New(core.Config{Backend: b.store, Clock: core.NewStubClock(t0), PoolHintAge: tc.hintAge})
				require.NoError(t, err)
			}
			n := b.calls.len()
			if tc.with != "" {
				b.calls.holdUntil(task, tc.with)
			}
			_, err = completer.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.ID, Lease: a.Lease, Status: core.StateSucceeded})
			require.NoError(t, err)
			slices.Sort(tc.want)
			require.Equal(t, tc.want, b.calls.depthsSince(n), "in the order begun: %v", b.calls.since(n))

			woken, err := s.Task(ctx, "acme", parked.ID)
			require.NoError(t, err)
			require.Equal(t, core.StateRunning, woken.State, "started by the hand-off")
			require.Equal(t, payload, []byte(woken.Payload), "the started task keeps its payload")
		})
	}
}

// inRegion is a typical in-region round trip of each call: GetItem 5 ms,
// ReceiveMessage 10 ms, TransactWriteItems 15 ms, any other 5 ms.
func inRegion(name string) time.Duration {
	switch {
	case strings.HasPrefix(name, "SQS.ReceiveMessage"):
		return 10 * time.Millisecond
	case strings.HasPrefix(name, "DynamoDB.TransactWriteItems"):
		return 15 * time.Millisecond
	}
	return 5 * time.Millisecond
}

// BenchmarkWakePath measures the time from a `complete` request, with a
// task parked behind it, to the next task's start committed (the return of
// the hand-off's TransactWriteItems), each AWS call made to take a typical
// in-region round trip (inRegion) on top of moto's own time, in the wake
// path's three cases of TestWakePathCalls: 2, 3 and 4 calls one after the
// other. It reports the median as ms/wake (ns/op counts the whole
// iteration: the parked task's submission too).
//
//	go test ./pkg/awsstore -run '^$' -bench BenchmarkWakePath -benchtime 40x
func BenchmarkWakePath(b *testing.B) {
	for _, bc := range []struct {
		name    string
		hintAge time.Duration
		fresh   bool // completed by a process that has not read the pool
	}{
		{"pool read recently", time.Hour, false},
		{"pool not read recently", time.Hour, true},
		{"no pool hints", -1, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bb := setup(b)
			ctx := context.Background()
			s, err := core.New(core.Config{Backend: bb.store, PoolHintAge: bc.hintAge})
			require.NoError(b, err)
			require.NoError(b, s.PutPool(ctx, poolCfg("gpu", 1, 10)))
			submit := func() core.Task {
				res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu", MaxWait: time.Hour})
				require.NoError(b, err)
				return res.Task
			}
			run := submit()
			require.Equal(b, core.StateRunning, run.State)
			bb.calls.mu.Lock()
			bb.calls.latency = inRegion
			bb.calls.mu.Unlock()
			var wakes []time.Duration
			for b.Loop() {
				parked := submit()
				require.Equal(b, core.StateParked, parked.State)
				completer := s
				if bc.fresh {
					completer, err = core.New(core.Config{Backend: bb.store, PoolHintAge: bc.hintAge})
					require.NoError(b, err)
				}
				n := bb.calls.len()
				begun := time.Now()
				_, err := completer.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: run.ID, Lease: run.Lease, Status: core.StateSucceeded})
				require.NoError(b, err)
				wakes = append(wakes, bb.calls.firstEnd(n, "DynamoDB.TransactWriteItems").Sub(begun))
				run, err = bb.store.Task(ctx, parked.ID)
				require.NoError(b, err)
				require.Equal(b, core.StateRunning, run.State, "started by the hand-off")
			}
			slices.Sort(wakes)
			b.ReportMetric(float64(wakes[len(wakes)/2])/float64(time.Millisecond), "ms/wake")
		})
	}
}

// firstEnd returns when the first call named name after the first n
// returned.
func (c *callLog) firstEnd(n int, name string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.calls[n:] {
		if k.name == name {
			return k.end
		}
	}
	return time.Time{}
}
