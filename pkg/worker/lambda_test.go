package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

func TestLambdaHandler(t *testing.T) {
	ctx := context.Background()
	lease := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	ev := api.PushedTask{ID: "t1", Tenant: "acme", Pool: "p", Key: "k", Payload: json.RawMessage(`{"n":3}`),
		Lease: "L", LeaseExpiresAt: lease, Attempt: 1}

	var seen *worker.Task
	h := worker.LambdaHandler(func(ctx context.Context, tk *worker.Task) (any, error) {
		seen = tk
		if dl, ok := ctx.Deadline(); !ok || !dl.Equal(lease) {
			return nil, errors.New("the handler's context does not end with the lease")
		}
		var in struct{ N int }
		if err := tk.Decode(&in); err != nil {
			return nil, err
		}
		switch in.N {
		case 0:
			return nil, errors.New("zero")
		case 1:
			panic("one")
		case 2:
			return nil, nil
		}
		return map[string]int{"double": in.N * 2}, nil
	})

	out, err := h(ctx, ev)
	require.NoError(t, err)
	require.JSONEq(t, `{"double":6}`, string(out))
	require.Equal(t, "t1", seen.ID)
	require.Equal(t, "acme", seen.Tenant)
	require.Equal(t, "L", seen.Lease)
	require.Equal(t, "running", seen.State)
	require.True(t, seen.LeaseExpiresAt.Equal(lease))

	ev.Payload = json.RawMessage(`{"n":2}`)
	out, err = h(ctx, ev)
	require.NoError(t, err)
	require.Nil(t, out, "no result")

	ev.Payload = json.RawMessage(`{"n":0}`)
	_, err = h(ctx, ev)
	require.EqualError(t, err, "zero", "the handler's error is the function's, as it is")

	ev.Payload = json.RawMessage(`{"n":1}`)
	_, err = h(ctx, ev)
	require.EqualError(t, err, "panic: one")

	_, err = h(ctx, api.PushedTask{})
	require.ErrorContains(t, err, "not a pushed task")

	seen = nil
	ev.Payload = json.RawMessage(`{"n":3}`)
	ev.LeaseExpiresAt = time.Now().Add(-time.Minute)
	_, err = h(ctx, ev)
	require.ErrorContains(t, err, "its lease ended", "an event held past its lease is not run")
	require.Nil(t, seen)
}
