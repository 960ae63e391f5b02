package awsstore_test

import (
	"fmt"
	"testing"
	"time"

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
