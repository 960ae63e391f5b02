package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseContext(t *testing.T) {
	t.Parallel()
	ctx, err := parseContext([]string{"-c", "poolsFile=p.yaml", "--context", "jwtAudience=a,b=c"})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"poolsFile": "p.yaml", "jwtAudience": "a,b=c"}, ctx)
	for _, bad := range [][]string{{"poolsFile=p.yaml"}, {"-c"}, {"-c", "novalue"}, {"-c", "=x"}} {
		_, err := parseContext(bad)
		require.Error(t, err, "%q", bad)
	}
}
