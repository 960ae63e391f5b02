package lambdaapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// BenchmarkLifecycle measures submit + complete over loopback HTTP on the
// memory backend, served natively by the API handler and through the
// gateway and the Lambda handlers, to show what the adapter costs.
func BenchmarkLifecycle(b *testing.B) {
	pool := core.PoolConfig{Name: "bench", Capacity: 1 << 20, MaxParked: 0, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}
	for _, runtime := range []string{"native", "lambda"} {
		b.Run(runtime, func(b *testing.B) {
			store := memstore.New(memstore.Options{})
			s, err := core.New(core.Config{Backend: store})
			require.NoError(b, err)
			require.NoError(b, s.PutPool(context.Background(), pool))
			var h http.Handler
			if runtime == "native" {
				h = httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"acme-secret": "acme"})})
			} else {
				h, err = lambdaapi.NewGateway(lambdaapi.GatewayOptions{
					Functions: functions(b, func() core.Backend { return store }, slog.New(slog.DiscardHandler), lambdaapi.NewMetrics(io.Discard, "", nil)),
					Claims:    claims,
				})
				require.NoError(b, err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			hc := srv.Client()
			do := func(method, path, body string) []byte {
				req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader([]byte(body)))
				require.NoError(b, err)
				req.Header.Set("Authorization", "Bearer acme-secret")
				res, err := hc.Do(req)
				require.NoError(b, err)
				defer res.Body.Close()
				out, err := io.ReadAll(res.Body)
				require.NoError(b, err)
				if res.StatusCode >= 300 {
					b.Fatalf("%s %s: %d %s", method, path, res.StatusCode, out)
				}
				return out
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var sub struct {
					Task struct{ ID, Lease string }
				}
				require.NoError(b, json.Unmarshal(do(http.MethodPost, "/v1/pools/bench/tasks", `{"payload":{"n":1}}`), &sub))
				do(http.MethodPost, "/v1/tasks/"+sub.Task.ID+"/complete", fmt.Sprintf(`{"lease":%q,"status":"succeeded"}`, sub.Task.Lease))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lifecycles/s")
		})
	}
}

// BenchmarkInvoke measures one API Gateway event through the submit
// handler's JSON interface, without HTTP.
func BenchmarkInvoke(b *testing.B) {
	store := memstore.New(memstore.Options{})
	s, err := core.New(core.Config{Backend: store})
	require.NoError(b, err)
	require.NoError(b, s.PutPool(context.Background(), core.PoolConfig{Name: "gpu", Capacity: 1 << 20, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}))
	h, err := lambdaapi.New(lambdaapi.Config{Function: lambdaapi.Mailbox, Scheduler: s})
	require.NoError(b, err)
	payload := fixture(b, "apigw-v2-mailbox.json")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := h.Invoke(context.Background(), payload); err != nil {
			b.Fatal(err)
		}
	}
}
