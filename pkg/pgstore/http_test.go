package pgstore_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/internal/httpapi/httpapitest"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
)

// TestHTTPContract runs the HTTP API v1 contract suite against the handler
// over core and this store, on the real clock, behind a real HTTP server.
func TestHTTPContract(t *testing.T) {
	t.Parallel()
	httpapitest.Run(t, func(t *testing.T, pools []core.PoolConfig) httpapitest.Target {
		s, err := core.New(core.Config{Backend: open(t, pgstore.Options{})})
		require.NoError(t, err)
		for _, p := range pools {
			require.NoError(t, s.PutPool(context.Background(), p))
		}
		srv := httptest.NewUnstartedServer(httpapi.New(httpapi.Options{
			Scheduler: s,
			Auth: httpapi.NewIdentityAuth(map[string]httpapi.Identity{
				"acme-secret": httpapi.TenantIdentity("acme"), "globex-secret": httpapi.TenantIdentity("globex"),
				"worker-secret": httpapi.WorkerIdentity(httpapitest.Worker, httpapitest.WorkerPools...),
			}),
			Logger: slog.New(slog.DiscardHandler),
		}))
		srv.Listener = httpapi.Listener(srv.Listener)
		srv.Start()
		tr := &http.Transport{}
		t.Cleanup(func() {
			tr.CloseIdleConnections()
			srv.Close()
		})
		return httpapitest.Target{
			BaseURL: srv.URL, AcmeToken: "acme-secret", GlobexToken: "globex-secret", WorkerToken: "worker-secret",
			Client: &http.Client{Transport: tr},
		}
	})
}
