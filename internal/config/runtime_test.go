package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/config"
)

func TestRuntime(t *testing.T) {
	t.Parallel()
	const rest = "store: {type: memory}\npools: [{name: a, capacity: 1}]\n"
	c, err := config.Parse([]byte(rest))
	require.NoError(t, err)
	require.Equal(t, config.RuntimeNative, c.Runtime, "native by default")

	c, err = config.Parse([]byte("runtime: lambda\nauth: {tokens: [{token: t, tenant: acme}]}\n" + rest))
	require.NoError(t, err)
	require.Equal(t, config.RuntimeLambda, c.Runtime)

	_, err = config.Parse([]byte("runtime: lambda\n" + rest))
	var fe *config.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "auth.tokens", fe.Field)

	_, err = config.Parse([]byte("runtime: serverless\n" + rest))
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "runtime", fe.Field)

	const lambda = "runtime: lambda\nauth: {tokens: [{token: t, tenant: acme}]}\n"
	const queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/results"
	c, err = config.Parse([]byte(lambda + "resultsQueue: " + queue + "\n" + rest))
	require.NoError(t, err)
	require.Equal(t, queue, c.ResultsQueue)
	c, err = config.Parse([]byte("resultsQueue: " + queue + "\n" + rest))
	require.NoError(t, err, "the native runtime consumes a results queue too")
	require.Equal(t, queue, c.ResultsQueue)
	for _, bad := range []string{lambda + "resultsQueue: results\n", "resultsQueue: sqs/results\n"} {
		_, err = config.Parse([]byte(bad + rest))
		require.ErrorAs(t, err, &fe, bad)
		require.Equal(t, "resultsQueue", fe.Field)
	}
}
