package core

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLeasePool(t *testing.T) {
	t.Parallel()
	for _, pool := range []string{"gpu", "a.b.c", "P_1-x"} {
		lease := newLease(pool)
		got, ok := leasePool(lease)
		require.True(t, ok, lease)
		require.Equal(t, pool, got)
		require.NotEqual(t, lease, newLease(pool), "tokens are random")
	}
	for _, lease := range []string{
		"0123456789abcdef0123456789abcdef", // a token that names no pool
		"not-a-lease",
		"0123.",    // an empty name
		"0123.a b", // not a pool name
		"",
	} {
		_, ok := leasePool(lease)
		require.False(t, ok, lease)
	}
}
