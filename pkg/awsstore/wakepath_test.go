package awsstore_test

import (
	"context"
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

// callLog records the AWS calls made, in order, as "Service.Operation",
// with the kind of item a GetItem reads ("DynamoDB.GetItem TASK").
type callLog struct {
	mu    sync.Mutex
	calls []string
}

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
				c.calls = append(c.calls, name)
				c.mu.Unlock()
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})
}

// since returns the calls recorded after the first n.
func (c *callLog) since(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls[n:]...)
}

func (c *callLog) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// TestWakePathCalls records, in order, the AWS calls of a completion with
// a task parked behind it: from the release decided (after the completing
// task's read) to the next task's start committed, 2 sequential calls —
// ReceiveMessage, whose message carries the parked task, and the one
// TransactWriteItems that ends one task and starts the other — when the
// releasing process read the pool within Config.PoolHintAge; with the hint
// turned off, the pool read comes first. A task too large for its message
// to carry it (SQS bills each 64 KiB) is read.
func TestWakePathCalls(t *testing.T) {
	t.Parallel()
	large := []byte(`{"blob":"` + strings.Repeat("x", 60<<10) + `"}`)
	for _, tc := range []struct {
		name    string
		hintAge time.Duration
		payload []byte
		want    []string
	}{
		{"pool read recently", time.Hour, nil, []string{
			"DynamoDB.GetItem TASK", // the completing task
			"SQS.ReceiveMessage",
			"DynamoDB.TransactWriteItems",
			"SQS.DeleteMessage", "DynamoDB.GetItem POOL", // after the commit: the dispatch that follows a hand-off
		}},
		{"large payload", time.Hour, large, []string{
			"DynamoDB.GetItem TASK",
			"SQS.ReceiveMessage",
			"DynamoDB.GetItem TASK", // the parked task: its message does not carry it
			"DynamoDB.TransactWriteItems",
			"SQS.DeleteMessage", "DynamoDB.GetItem POOL",
		}},
		{"no pool hint", -1, nil, []string{
			"DynamoDB.GetItem TASK",
			"DynamoDB.GetItem POOL",
			"SQS.ReceiveMessage",
			"DynamoDB.TransactWriteItems",
			"SQS.DeleteMessage", "DynamoDB.GetItem POOL",
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

			n := b.calls.len()
			complete(a)
			require.Equal(t, tc.want, b.calls.since(n))

			woken, err := s.Task(ctx, "acme", parked.ID)
			require.NoError(t, err)
			require.Equal(t, core.StateRunning, woken.State, "started by the hand-off")
			require.Equal(t, payload, []byte(woken.Payload), "the started task keeps its payload")
		})
	}
}
