package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/pgtest"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/core/coretest"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
)

// cluster is the one PostgreSQL cluster of this test binary; every backend
// gets a schema of its own in it.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	code := pgtest.Main(m, func(c *pgtest.Cluster) { cluster = c })
	if code == 0 {
		// Every Store closed its listener and its pool.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// open opens a store on a fresh schema, closed when t ends.
func open(t testing.TB, opts pgstore.Options) *pgstore.Store {
	t.Helper()
	if opts.DSN == "" {
		opts.DSN = cluster.DSN
	}
	if opts.Schema == "" {
		opts.Schema = cluster.Schema(t)
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = 4
	}
	s, err := pgstore.Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func newBackend(t *testing.T, clock core.Clock) core.Backend {
	t.Helper()
	return open(t, pgstore.Options{Clock: clock})
}

func TestContract(t *testing.T) {
	t.Parallel()
	coretest.Exercise(t, newBackend)
}

func TestProperty(t *testing.T) {
	t.Parallel()
	coretest.Property(t, newBackend)
}
