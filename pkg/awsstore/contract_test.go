package awsstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/core/coretest"
)

// newBackend is the contract suites' factory: a store over a fresh table and
// queue prefix whose parking-queue visibility follows clock (and, on SQS's
// own timer, 5 real seconds).
func newBackend(t *testing.T, clock core.Clock) core.Backend {
	return setup(t, setupOpts{clock: clock, visibility: 5 * time.Second}).store
}

func TestContract(t *testing.T) {
	t.Parallel()
	coretest.Exercise(t, newBackend)
}

// TestProperty runs the model-based property test, sized for moto: two
// seeds of 120 steps.
func TestProperty(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			coretest.PropertySeed(t, newBackend, seed, 120)
		})
	}
}

// shardedStore puts every pool with three slot shards, whatever its
// capacity (a capacity below 3 leaves shards of capacity 0, which starts
// must pass over).
type shardedStore struct{ *awsstore.Store }

const contractShards = 3

func (s shardedStore) PutPool(ctx context.Context, cfg core.PoolConfig) error {
	cfg.SlotShards = contractShards
	return s.Store.PutPool(ctx, cfg)
}

func newShardedBackend(t *testing.T, clock core.Clock) core.Backend {
	return shardedStore{newBackend(t, clock).(*awsstore.Store)}
}

func TestContractSharded(t *testing.T) {
	t.Parallel()
	coretest.Exercise(t, newShardedBackend)
}

func TestPropertySharded(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			coretest.PropertySeed(t, newShardedBackend, seed, 120)
		})
	}
}
