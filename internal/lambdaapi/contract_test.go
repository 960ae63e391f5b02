package lambdaapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/internal/httpapi/httpapitest"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// claims are the JWT claims of the contract suite's two tokens.
var claims = map[string]map[string]string{
	"acme-secret":   {"tenant": "acme", "sub": "user-1", "iss": "https://issuer.example"},
	"globex-secret": {"tenant": "globex", "sub": "user-2", "iss": "https://issuer.example"},
	// An array claim as API Gateway passes it to the function.
	"worker-secret": {"role": "worker", "sub": httpapitest.Worker, "pools": "[" + strings.Join(httpapitest.WorkerPools, " ") + "]", "iss": "https://issuer.example"},
}

// functions builds the four handlers, each with its own scheduler over the
// backend that newBackend returns, as four function instances over one table
// would be.
func functions(t testing.TB, newBackend func() core.Backend, log *slog.Logger, mets *lambdaapi.Metrics) map[lambdaapi.Function]lambda.Handler {
	t.Helper()
	out := map[lambdaapi.Function]lambda.Handler{}
	for _, fn := range lambdaapi.Functions {
		s, err := core.New(core.Config{Backend: newBackend(), Logger: log, Observer: mets.Observer()})
		require.NoError(t, err)
		h, err := lambdaapi.New(lambdaapi.Config{Function: fn, Scheduler: s, Logger: log, Metrics: mets})
		require.NoError(t, err)
		out[fn] = h
	}
	return out
}

// gatewayTarget serves the four handlers over backend through an in-process
// gateway behind a real HTTP server.
func gatewayTarget(t *testing.T, backend core.Backend, pools []core.PoolConfig) httpapitest.Target {
	t.Helper()
	return gatewayTargetOf(t, func() core.Backend { return backend }, pools)
}

// gatewayTargetOf is gatewayTarget with a backend of its own for each
// function (and one more to create the pools).
func gatewayTargetOf[B core.Backend](t *testing.T, newBackend func() B, pools []core.PoolConfig) httpapitest.Target {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := core.New(core.Config{Backend: newBackend()})
	require.NoError(t, err)
	for _, p := range pools {
		require.NoError(t, s.PutPool(context.Background(), p))
	}
	gw, err := lambdaapi.NewGateway(lambdaapi.GatewayOptions{
		Functions: functions(t, func() core.Backend { return newBackend() }, log, lambdaapi.NewMetrics(io.Discard, "", nil)),
		Claims:    claims,
		Logger:    log,
	})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(gw)
	srv.Listener = httpapi.Listener(srv.Listener)
	srv.Start()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return httpapitest.Target{BaseURL: srv.URL, AcmeToken: "acme-secret", GlobexToken: "globex-secret", WorkerToken: "worker-secret", Client: &http.Client{Transport: tr}}
}

// TestContract runs the HTTP API v1 contract suite, unchanged, against the
// Lambda handlers over core and the memory backend, through the gateway.
func TestContract(t *testing.T) {
	t.Parallel()
	httpapitest.Run(t, func(t *testing.T, pools []core.PoolConfig) httpapitest.Target {
		return gatewayTarget(t, memstore.New(memstore.Options{}), pools)
	})
}
