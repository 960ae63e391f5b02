package lambdaapi_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
)

// FuzzInvoke feeds arbitrary payloads to every function: none panics, and
// an API Gateway event that the submit function accepts gets a well-formed
// response.
func FuzzInvoke(f *testing.F) {
	names, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(f, err)
	for _, n := range names {
		data, err := os.ReadFile(n)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte(`{"version":"2.0","routeKey":"x","requestContext":{"http":{"method":"GET"}},"rawPath":"relative"}`))
	f.Add([]byte(`{"Records":[{"eventSource":"aws:sqs","body":"{"}]}`))
	f.Add([]byte(`{"detail-type":"x","detail":null}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		b := setup(t)
		for _, fn := range lambdaapi.Functions {
			out, err := b.fns[fn].Invoke(context.Background(), payload)
			if err != nil {
				continue
			}
			require.True(t, json.Valid(out), "%s: %s", fn, out)
		}
		out, err := b.fns[lambdaapi.Mailbox].Invoke(context.Background(), payload)
		if err != nil {
			return
		}
		var res events.APIGatewayV2HTTPResponse
		if json.Unmarshal(out, &res) == nil && res.StatusCode != 0 {
			require.GreaterOrEqual(t, res.StatusCode, 200)
			require.Less(t, res.StatusCode, 600)
		}
	})
}
