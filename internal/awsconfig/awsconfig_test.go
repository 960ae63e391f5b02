package awsconfig_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

var moto *mototest.Server

func TestMain(m *testing.M) { os.Exit(mototest.RunMain(m, &moto, "awsconfig tests")) }

func uniq() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

func TestFromStore(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(`store: {type: aws, region: eu-west-1, endpoint: "http://127.0.0.1:4566", table: tbl, queuePrefix: q-, createResources: true}
pools: [{name: a, capacity: 1}]
`))
	require.NoError(t, err)
	require.Equal(t, awsconfig.Settings{Region: "eu-west-1", Endpoint: "http://127.0.0.1:4566", Table: "tbl", QueuePrefix: "q-", CreateResources: true},
		awsconfig.FromStore(c.Store))
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	s, err := awsconfig.FromEnv(env(map[string]string{
		"AWS_REGION": "us-west-2", "PARKINGLOT_TABLE": "pl", "PARKINGLOT_QUEUE_PREFIX": "x-",
		"AWS_ENDPOINT_URL": "http://localhost:4566", "PARKINGLOT_CREATE_RESOURCES": "true",
	}))
	require.NoError(t, err)
	require.Equal(t, awsconfig.Settings{Region: "us-west-2", Endpoint: "http://localhost:4566", Table: "pl", QueuePrefix: "x-", CreateResources: true}, s)

	_, err = awsconfig.FromEnv(env(map[string]string{"PARKINGLOT_TABLE": "pl"}))
	require.ErrorContains(t, err, "AWS_REGION")
	_, err = awsconfig.FromEnv(env(map[string]string{"AWS_REGION": "us-west-2"}))
	require.ErrorContains(t, err, "PARKINGLOT_TABLE")
	_, err = awsconfig.FromEnv(env(map[string]string{"AWS_REGION": "us-west-2", "PARKINGLOT_TABLE": "pl", "PARKINGLOT_CREATE_RESOURCES": "yes"}))
	require.ErrorContains(t, err, "PARKINGLOT_CREATE_RESOURCES")
}

// TestLoadCreatesResources opens a store on moto that creates its table and
// queues, runs a task through it, and opens the same resources again
// without creating anything.
func TestLoadCreatesResources(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := awsconfig.Settings{Region: mototest.Region, Endpoint: moto.Endpoint, Table: "pl-" + uniq(), QueuePrefix: "pl" + uniq() + "-", CreateResources: true}
	st, err := awsconfig.Load(ctx, s, awsstore.Options{})
	require.NoError(t, err)
	require.Equal(t, s.Table, st.Options().Table)
	sched, err := core.New(core.Config{Backend: st})
	require.NoError(t, err)
	require.NoError(t, sched.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: 1, MaxParked: 5, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}))
	a, err := sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, a.Task.State)
	b, err := sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
	require.NoError(t, err)
	require.Equal(t, core.StateParked, b.Task.State, "the queue exists: the park was sent")
	require.False(t, b.Task.Unsent)

	// A second process on the same resources, creating nothing: it sees the
	// pool and wakes the parked task when the first completes.
	s.CreateResources = false
	st2, err := awsconfig.Load(ctx, s, awsstore.Options{})
	require.NoError(t, err)
	sched2, err := core.New(core.Config{Backend: st2})
	require.NoError(t, err)
	_, err = sched2.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.Task.ID, Lease: a.Task.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)
	got, err := sched.Task(ctx, "acme", b.Task.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, got.State)

	// Without creation, a missing table is an error, not an empty store.
	missing := s
	missing.Table = "pl-missing-" + uniq()
	st3, err := awsconfig.Load(ctx, missing, awsstore.Options{})
	require.NoError(t, err, "Load makes no call without CreateResources")
	_, err = st3.Pool(ctx, "p")
	require.Error(t, err)
	require.NotErrorIs(t, err, core.ErrPoolNotFound)
}

func TestSDKConfigNeedsRegion(t *testing.T) {
	t.Parallel()
	_, err := awsconfig.SDKConfig(context.Background(), awsconfig.Settings{Table: "t"})
	require.ErrorContains(t, err, "Region")
}
