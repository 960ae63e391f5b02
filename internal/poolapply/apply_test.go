package poolapply_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/poolapply"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

func TestApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := memstore.New(memstore.Options{})
	gpu := core.PoolConfig{Name: "gpu", Capacity: 2, MaxParked: 5, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}
	cpu := core.PoolConfig{Name: "cpu", Capacity: 8, DefaultMaxWait: time.Minute, RunTimeout: time.Minute, Executor: core.ExecutorPull}

	res, err := poolapply.Apply(ctx, s, []core.PoolConfig{gpu, cpu})
	require.NoError(t, err)
	require.Equal(t, poolapply.Result{Created: []string{"gpu", "cpu"}}, res)

	res, err = poolapply.Apply(ctx, s, []core.PoolConfig{gpu, cpu})
	require.NoError(t, err)
	require.Equal(t, poolapply.Result{Unchanged: []string{"gpu", "cpu"}}, res)

	gpu.Capacity = 3
	res, err = poolapply.Apply(ctx, s, []core.PoolConfig{gpu, cpu})
	require.NoError(t, err)
	require.Equal(t, poolapply.Result{Updated: []string{"gpu"}, Unchanged: []string{"cpu"}}, res)
	p, err := s.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, gpu, p.PoolConfig)

	// Nothing is written when any pool is invalid or named twice.
	for name, pools := range map[string][]core.PoolConfig{
		"invalid": {{Name: "new", Capacity: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}, {Name: "bad"}},
		"twice":   {{Name: "new", Capacity: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}, gpu, gpu},
	} {
		_, err := poolapply.Apply(ctx, s, pools)
		require.Error(t, err, name)
		_, err = s.Pool(ctx, "new")
		require.ErrorIs(t, err, core.ErrPoolNotFound, name)
	}
}
