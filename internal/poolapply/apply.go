// Package poolapply writes pools' configurations to a store, the source of
// truth of every runtime: `parkinglot pools apply` and the CloudFormation
// custom resource of the serverless stack (internal/lambdaapi) apply pools
// through it, and the Lambda functions only read them.
package poolapply

import (
	"context"
	"errors"
	"fmt"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Result is what Apply did, by pool name, in the order of the pools given.
type Result struct {
	Created   []string
	Updated   []string
	Unchanged []string
}

// Apply validates every pool, then creates each one the store lacks and
// updates each one whose configuration differs, keeping its counters. A
// pool whose configuration is the store's is not written, so applying the
// same pools again writes nothing. It does not wake parked work: the sweep
// dispatches a pool whose capacity grew. It stops at the first pool the
// store refuses (awsstore refuses to change slotShards while the pool's
// tasks run) and returns what it did before, with the error naming the pool.
func Apply(ctx context.Context, s core.PoolStore, pools []core.PoolConfig) (Result, error) {
	var res Result
	seen := map[string]bool{}
	for i, p := range pools {
		if err := p.Validate(); err != nil {
			return res, fmt.Errorf("pools[%d]: %w", i, err)
		}
		if seen[p.Name] {
			return res, fmt.Errorf("pools[%d]: pool %s is named twice", i, p.Name)
		}
		seen[p.Name] = true
	}
	for _, p := range pools {
		cur, err := s.Pool(ctx, p.Name)
		exists := err == nil
		switch {
		case err != nil && !errors.Is(err, core.ErrPoolNotFound):
			return res, fmt.Errorf("pool %s: %w", p.Name, err)
		case exists && cur.PoolConfig == p:
			res.Unchanged = append(res.Unchanged, p.Name)
			continue
		}
		if err := s.PutPool(ctx, p); err != nil {
			return res, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		if exists {
			res.Updated = append(res.Updated, p.Name)
		} else {
			res.Created = append(res.Created, p.Name)
		}
	}
	return res, nil
}
