package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// bundle is a handler over core and memstore driven by a stub clock.
type bundle struct {
	clock *core.StubClock
	sched *core.Scheduler
	h     http.Handler
}

var testPools = []core.PoolConfig{
	{Name: "gpu", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute},
	{Name: "cpu", Capacity: 4, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute},
}

func setup(t *testing.T) *bundle {
	t.Helper()
	clk := core.NewStubClock(time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC))
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{Clock: clk}), Clock: clk})
	require.NoError(t, err)
	for _, p := range testPools {
		require.NoError(t, s.PutPool(context.Background(), p))
	}
	h := httpapi.New(httpapi.Options{
		Scheduler: s,
		Auth:      httpapi.NewTokenAuth(map[string]string{"tok-acme": "acme", "tok-globex": "globex"}),
	})
	return &bundle{clock: clk, sched: s, h: h}
}

// do serves one request as tenant token tok and returns the status, headers
// and body.
func (b *bundle) do(t *testing.T, tok, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(data, &v), "body %s", data)
	return v
}

func TestSubmitCompleteFlow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, hdr, body := b.do(t, "tok-acme", "POST", "/v1/pools/gpu/tasks", `{"payload":{"n":1}}`)
	require.Equal(t, http.StatusCreated, code, "%s", body)
	task := decode[api.TaskBody](t, body).Task
	require.Equal(t, "running", task.State)
	require.NotEmpty(t, task.Lease)
	require.Equal(t, "/v1/tasks/"+task.ID, hdr.Get("Location"))

	code, _, body = b.do(t, "tok-acme", "POST", "/v1/tasks/"+task.ID+"/complete", `{"lease":"`+task.Lease+`","status":"succeeded","result":[1]}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	done := decode[api.TaskBody](t, body).Task
	require.Equal(t, "succeeded", done.State)
	require.JSONEq(t, `[1]`, string(done.Result))
}
