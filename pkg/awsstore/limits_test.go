package awsstore_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestLargestTaskFitsOneItem stores a task with the largest payload, result
// and error core accepts: the task item (and the outcome message, which
// carries the result) must fit DynamoDB's 400 KB item, which moto enforces.
func TestLargestTaskFitsOneItem(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	clock := core.NewStubClock(t0)
	s, err := core.New(core.Config{Backend: b.store, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, poolCfg("gpu", 1, 10)))

	jsonString := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`) }
	payload, result := jsonString(core.MaxPayloadBytes), jsonString(core.MaxResultBytes)
	res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu", Key: strings.Repeat("k", 128), Payload: payload})
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, res.Task.State)
	done, err := s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: res.Task.ID, Lease: res.Task.Lease,
		Status: core.StateFailed, Result: result, Error: strings.Repeat("e", 4096)})
	require.NoError(t, err)
	require.Equal(t, core.StateFailed, done.State)

	got, err := s.Task(ctx, "acme", res.Task.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateFailed, got.State)
	require.JSONEq(t, string(payload), string(got.Payload))
	require.JSONEq(t, string(result), string(got.Result))
	page, err := s.Mailbox(ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme", Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Messages, 2)
	require.JSONEq(t, string(result), string(page.Messages[1].Result))
}
