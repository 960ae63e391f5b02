package core_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// TestReplayOfAKeyStoredBefore: a key stored with the hash of the raw
// fields, as keys were before the canonical hash, still replays a retry
// that repeats the request byte for byte.
func TestReplayOfAKeyStoredBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := core.NewStubClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	b := memstore.New(memstore.Options{Clock: clock})
	s, err := core.New(core.Config{Backend: b, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: 4, MaxParked: 4, DefaultMaxWait: time.Minute, RunTimeout: time.Hour}))

	// The task and key as the previous version committed them for this
	// request; the hash is SHA-256 over the length-prefixed fields "p",
	// "r", `{"a":1}`, "1m0s", "" and "0s", its first 16 bytes in hex.
	req := core.SubmitRequest{Tenant: "acme", Pool: "p", Key: "k", Recipient: "r", Payload: json.RawMessage(`{"a":1}`), MaxWait: time.Minute}
	const legacy = "6e9091f22c73a0f4066a4257520be1bb"
	now := clock.Now()
	old := core.Task{
		ID: "old-task", Key: "k", Tenant: "acme", Pool: "p", Recipient: "r", State: core.StateParked, Payload: req.Payload,
		SubmittedAt: now, Deadline: now.Add(time.Minute), RunTimeout: time.Hour, BodyHash: legacy,
	}
	require.NoError(t, b.Commit(ctx, &core.Txn{
		Pool: "p", ParkedDelta: 1, Tasks: []core.TaskWrite{{Task: old}},
		Key: &core.KeyRecord{Tenant: "acme", Key: "k", TaskID: old.ID, BodyHash: legacy},
	}))

	res, err := s.Submit(ctx, req)
	require.NoError(t, err)
	require.True(t, res.Replayed)
	require.Equal(t, old.ID, res.Task.ID)

	// Spacing that the canonical hash would forgive is compared raw against
	// a key stored as raw fields, as it was when the key was stored.
	spaced := req
	spaced.Payload = json.RawMessage(`{"a": 1}`)
	_, err = s.Submit(ctx, spaced)
	require.ErrorIs(t, err, core.ErrKeyConflict)

	// A key stored now forgives it.
	fresh := req
	fresh.Key = "k2"
	first, err := s.Submit(ctx, fresh)
	require.NoError(t, err)
	fresh.Payload = json.RawMessage(` { "a" : 1 } `)
	fresh.MaxWait = 0
	again, err := s.Submit(ctx, fresh)
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.Task.ID, again.Task.ID)
}
