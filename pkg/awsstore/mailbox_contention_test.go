package awsstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestMailboxContention races concurrent transitions into few mailboxes and
// reports the transactions DynamoDB cancelled: 12 goroutines run 360 task
// lifecycles (a start with its started message, then a completion with its
// outcome message: 720 transactions) into 2 or 6 recipients' mailboxes,
// spread evenly at every step,
// while one reader per recipient polls its mailbox. Figures are reported,
// not asserted (docs/benchmarks.md, "Mailbox contention"); the test checks
// that every message arrives once, in cursor order, each task's started
// message before its outcome. Not run with -short:
//
//	go test -count=1 -run TestMailboxContention -v ./pkg/awsstore/
func TestMailboxContention(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement (docs/benchmarks.md); run without -short")
	}
	for _, recipients := range []int{2, 6} {
		t.Run(fmt.Sprintf("recipients=%d", recipients), func(t *testing.T) {
			mailboxContention(t, recipients)
		})
	}
}

func mailboxContention(t *testing.T, recipients int) {
	const goroutines, tasksEach = 12, 30
	b := setup(t)
	ctx := testCtx(t)

	// The readers get clients of their own, so that their requests are
	// counted apart from the writers'.
	readCounter := &awsstore.RequestCounter{}
	cfg := moto.Config()
	cfg.Retryer = func() aws.Retryer { return awsstore.NewRetryer(0) }
	readCounter.Register(&cfg)
	ro := b.opts
	ro.DynamoDB = dynamodb.NewFromConfig(cfg)
	reader, err := awsstore.New(ctx, ro)
	require.NoError(t, err)

	recipient := func(i int) string { return fmt.Sprintf("r%d", i%recipients) }
	msg := func(tk *core.Task, typ core.MessageType, at time.Time) core.Message {
		return core.Message{Tenant: tk.Tenant, Recipient: tk.Recipient, TaskID: tk.ID, Pool: tk.Pool, Type: typ, At: at}
	}
	event := func(tk *core.Task, typ string, from core.State, at time.Time) core.Event {
		return core.Event{At: at, Tenant: tk.Tenant, Pool: tk.Pool, TaskID: tk.ID, Type: typ, From: from, To: tk.State}
	}

	var mu sync.Mutex
	got := map[string][]core.Message{}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readErrs := make(chan error, recipients)
	for r := range recipients {
		readers.Go(func() {
			var after core.Cursor
			for {
				page, err := reader.Messages(ctx, "acme", recipient(r), after, core.MaxPageLimit)
				if err != nil {
					readErrs <- err
					return
				}
				if len(page) > 0 {
					after = page[len(page)-1].Cursor
					mu.Lock()
					got[recipient(r)] = append(got[recipient(r)], page...)
					mu.Unlock()
					continue
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}

	before := b.counter.Snapshot()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range tasksEach {
				n := g*tasksEach + i
				now := time.Now()
				tk := core.Task{
					ID: fmt.Sprintf("task-%03d", n), Tenant: "acme", Pool: "p", Recipient: recipient(g + i),
					State: core.StateRunning, SubmittedAt: now, StartedAt: now, Deadline: now.Add(time.Hour),
				}
				if err := b.store.Commit(ctx, &core.Txn{
					Tasks:    []core.TaskWrite{{Task: tk}},
					Messages: []core.Message{msg(&tk, core.MessageStarted, now)},
					Events:   []core.Event{event(&tk, core.EventStart, core.StateParked, now)},
				}); err != nil {
					errs <- err
					return
				}
				now = time.Now()
				tk.State, tk.EndedAt = core.StateSucceeded, now
				if err := b.store.Commit(ctx, &core.Txn{
					Tasks:    []core.TaskWrite{{Task: tk, Expect: 1}},
					Messages: []core.Message{msg(&tk, core.MessageType(core.StateSucceeded), now)},
					Events:   []core.Event{event(&tk, core.EventComplete, core.StateRunning, now)},
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	writes := b.counter.Snapshot().Sub(before)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	close(stop)
	readers.Wait()
	close(readErrs)
	for err := range readErrs {
		require.NoError(t, err)
	}
	// Whatever the readers had not read yet.
	for r := range recipients {
		var after core.Cursor
		if ms := got[recipient(r)]; len(ms) > 0 {
			after = ms[len(ms)-1].Cursor
		}
		for {
			page, err := reader.Messages(ctx, "acme", recipient(r), after, core.MaxPageLimit)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			got[recipient(r)] = append(got[recipient(r)], page...)
			after = page[len(page)-1].Cursor
		}
	}
	reads := readCounter.Snapshot()

	total := 0
	for r := range recipients {
		ms := got[recipient(r)]
		seen := map[string]bool{}
		for i, m := range ms {
			if i > 0 {
				require.Greater(t, m.Cursor, ms[i-1].Cursor, "cursor order")
			}
			k := m.TaskID + "/" + string(m.Type)
			require.False(t, seen[k], "%s twice", k)
			seen[k] = true
			if m.Type != core.MessageStarted {
				require.True(t, seen[m.TaskID+"/"+string(core.MessageStarted)], "%s: outcome before started", m.TaskID)
			}
		}
		total += len(ms)
	}
	require.Equal(t, 2*goroutines*tasksEach, total, "every message once")

	tw := writes["DynamoDB.TransactWriteItems"]
	t.Logf("recipients %d: %d transitions in %s (%.0f/s): writers sent %d TransactWriteItems, %d cancelled; %d other writer requests",
		recipients, 2*goroutines*tasksEach, elapsed.Round(time.Millisecond), float64(2*goroutines*tasksEach)/elapsed.Seconds(),
		tw.Calls, tw.Errors, writes.Total().Calls-tw.Calls)
	t.Logf("readers:\n%s", reads)
}
