package config_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/config"
)

// TestPostgresStore: the DSN from the file wins over the environment,
// which fills it when the file has none.
func TestPostgresStore(t *testing.T) {
	t.Setenv(config.PostgresDSNEnv, "postgres://env@db/pl")
	c, err := config.Parse([]byte("store: {type: postgres, dsn: 'postgres://file@db/pl', schema: fleet_a, maxConns: 8}\n" + okPools))
	require.NoError(t, err)
	require.Equal(t, "postgres://file@db/pl", c.Store.DSN)
	require.Equal(t, "fleet_a", c.Store.Schema)
	require.Equal(t, 8, c.Store.MaxConns)

	c, err = config.Parse([]byte("store: {type: postgres}\n" + okPools))
	require.NoError(t, err)
	require.Equal(t, "postgres://env@db/pl", c.Store.DSN)
	require.Equal(t, "", c.Store.Schema, "pgstore's default")
}

func TestPostgresStoreInvalid(t *testing.T) {
	t.Setenv(config.PostgresDSNEnv, "")
	cases := []struct {
		name, store, field, reason string
	}{
		{"no dsn", "{type: postgres}", "store.dsn", config.PostgresDSNEnv},
		{"bad schema", "{type: postgres, dsn: 'postgres://u:secret@h/db', schema: Fleet-A}", "store.schema", "a-z0-9_"},
		{"negative maxConns", "{type: postgres, dsn: 'postgres://u:secret@h/db', maxConns: -1}", "store.maxConns", "negative"},
		{"dsn on embedded", "{type: embedded, dsn: 'postgres://u:secret@h/db'}", "store.dsn", "postgres only"},
		{"schema on memory", "{type: memory, schema: x}", "store.schema", "postgres only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte("store: " + tc.store + "\n" + okPools))
			require.Error(t, err)
			var fe *config.FieldError
			require.True(t, errors.As(err, &fe), "%v is not a FieldError", err)
			require.Equal(t, tc.field, fe.Field, "%v", err)
			require.Contains(t, fe.Reason, tc.reason)
			require.NotContains(t, err.Error(), "secret", "a DSN's password quoted")
		})
	}
}
