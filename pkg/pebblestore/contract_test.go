package pebblestore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/core/coretest"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

func newBackend(t *testing.T, clock core.Clock) core.Backend {
	t.Helper()
	s, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	coretest.Exercise(t, newBackend)
}

func TestProperty(t *testing.T) {
	t.Parallel()
	coretest.Property(t, newBackend)
}
