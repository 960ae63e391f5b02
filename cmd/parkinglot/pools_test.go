package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// poolsConfig writes a configuration file of store and 100 pools: hot,
// capacity 8 on shards slot shards, and pool-01 to pool-99, pool-01 of
// capacity cap1.
func poolsConfig(t *testing.T, dir, store string, shards, cap1 int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(store + "pools:\n")
	fmt.Fprintf(&b, "  - {name: hot, capacity: 8, maxParked: 100, slotShards: %d}\n", shards)
	for i := 1; i < 100; i++ {
		c := 1 + i%7
		if i == 1 {
			c = cap1
		}
		exec := []string{"permit", "pull", "permit"}[i%3]
		fmt.Fprintf(&b, "  - {name: pool-%02d, capacity: %d, maxParked: %d, defaultMaxWait: %dm, executor: %s}\n", i, c, 10*i, 1+i%5, exec)
	}
	path := filepath.Join(dir, "parkinglot.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// TestPoolsApplyOnMoto applies a file's 100 pools to the aws store on
// moto: all created, slotShards included; again, all unchanged; one
// changed, one updated; a change of slotShards while a task of the pool
// runs, refused with exit code 4.
func TestPoolsApplyOnMoto(t *testing.T) {
	moto := mototest.Start(t)
	name := fmt.Sprintf("%d", time.Now().UnixNano())
	store := fmt.Sprintf("store:\n  type: aws\n  region: %s\n  endpoint: %s\n  table: pl-apply-%s\n  queuePrefix: pla%s-\n  createResources: true\n",
		mototest.Region, moto.Endpoint, name, name)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	dir := t.TempDir()

	code, out, errOut := runCmd(t, "pools", "apply", "--config", poolsConfig(t, dir, store, 4, 2))
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "created   hot\n")
	require.True(t, strings.HasSuffix(out, "100 created, 0 updated, 0 unchanged\n"), out)

	st, err := awsconfig.Load(context.Background(), awsconfig.Settings{Region: mototest.Region, Endpoint: moto.Endpoint,
		Table: "pl-apply-" + name, QueuePrefix: "pla" + name + "-"}, awsstore.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	pools, err := st.Pools(ctx)
	require.NoError(t, err)
	require.Len(t, pools, 100)
	hot, err := st.Pool(ctx, "hot")
	require.NoError(t, err)
	require.Equal(t, 4, hot.SlotShards, "slotShards reaches the table")

	code, out, errOut = runCmd(t, "pools", "apply", "--config", poolsConfig(t, dir, store, 4, 2))
	require.Equal(t, exitOK, code, errOut)
	require.True(t, strings.HasSuffix(out, "0 created, 0 updated, 100 unchanged\n"), out)

	code, out, errOut = runCmd(t, "pools", "apply", "--config", poolsConfig(t, dir, store, 4, 3))
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "updated   pool-01\n")
	require.True(t, strings.HasSuffix(out, "0 created, 1 updated, 99 unchanged\n"), out)

	sched, err := core.New(core.Config{Backend: st})
	require.NoError(t, err)
	res, err := sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "hot"})
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, res.Task.State)
	code, _, errOut = runCmd(t, "pools", "apply", "--config", poolsConfig(t, dir, store, 2, 3))
	require.Equal(t, exitConflict, code, errOut)
	require.Contains(t, errOut, "slotShards cannot change from 4 to 2 while 1 tasks run")
	hot, err = st.Pool(ctx, "hot")
	require.NoError(t, err)
	require.Equal(t, 4, hot.SlotShards)
}

// TestPoolsApplyEmbedded applies pools to the embedded store, which a
// server then serves.
func TestPoolsApplyEmbedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := fmt.Sprintf("store:\n  type: embedded\n  path: %s\n", filepath.Join(dir, "data"))
	code, out, errOut := runCmd(t, "pools", "apply", "--config", poolsConfig(t, dir, store, 0, 2))
	require.Equal(t, exitOK, code, errOut)
	require.True(t, strings.HasSuffix(out, "100 created, 0 updated, 0 unchanged\n"), out)
	code, out, errOut = runCmd(t, "pools", "apply", "--config", poolsConfig(t, dir, store, 0, 2))
	require.Equal(t, exitOK, code, errOut)
	require.True(t, strings.HasSuffix(out, "0 created, 0 updated, 100 unchanged\n"), out)

	code, _, _ = runCmd(t, "pools", "apply")
	require.Equal(t, exitUsage, code)
}
