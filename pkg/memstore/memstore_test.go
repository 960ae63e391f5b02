package memstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/core/coretest"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newBackend(t *testing.T, clock core.Clock) core.Backend {
	t.Helper()
	return memstore.New(memstore.Options{Clock: clock})
}

func TestContract(t *testing.T) {
	t.Parallel()
	coretest.Exercise(t, newBackend)
}

func TestProperty(t *testing.T) {
	t.Parallel()
	coretest.Property(t, newBackend)
}
