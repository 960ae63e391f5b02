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

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// BenchmarkLifecycle measures one submit and one complete through the
// handler over core and the memory backend, without a network.
func BenchmarkLifecycle(b *testing.B) {
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.PutPool(context.Background(), core.PoolConfig{Name: "gpu", Capacity: 1 << 20, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}); err != nil {
		b.Fatal(err)
	}
	h := httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"t": "acme"})})
	serve := func(method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer t")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	b.ReportAllocs()
	for b.Loop() {
		w := serve("POST", "/v1/pools/gpu/tasks", `{"payload":{"frame":7},"runTimeout":"5m"}`)
		if w.Code != http.StatusCreated {
			b.Fatalf("submit: %d %s", w.Code, w.Body)
		}
		var tb api.TaskBody
		if err := json.Unmarshal(w.Body.Bytes(), &tb); err != nil {
			b.Fatal(err)
		}
		w = serve("POST", "/v1/tasks/"+tb.Task.ID+"/complete", `{"lease":"`+tb.Task.Lease+`","status":"succeeded","result":{"ok":true}}`)
		if w.Code != http.StatusOK {
			b.Fatalf("complete: %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkRejectBadBody measures the refusal of a malformed submission.
func BenchmarkRejectBadBody(b *testing.B) {
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	h := httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"t": "acme"})})
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v1/pools/gpu/tasks", strings.NewReader(`{"payload":{"frame":7},"maxWait":"soon"}`))
		r.Header.Set("Authorization", "Bearer t")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkLifecycleLoopback measures one submit and one complete over real
// HTTP on loopback (keep-alive connections, 32 concurrent clients), with
// zero hold time, so that the server is the bottleneck. One op is one
// lifecycle.
func BenchmarkLifecycleLoopback(b *testing.B) {
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.PutPool(context.Background(), core.PoolConfig{Name: "gpu", Capacity: 1 << 20, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"t": "acme"})}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	// Workers report with b.Error and stop: FailNow belongs to the
	// benchmark's own goroutine.
	post := func(path, body string) (int, []byte, error) {
		req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer t")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		return resp.StatusCode, out, err
	}
	b.SetParallelism(16) // 32 clients on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			code, body, err := post("/v1/pools/gpu/tasks", `{"payload":{"frame":7}}`)
			var tb api.TaskBody
			if err == nil && code == http.StatusCreated {
				err = json.Unmarshal(body, &tb)
			}
			if err != nil || code != http.StatusCreated {
				b.Errorf("submit: %d %s %v", code, body, err)
				return
			}
			code, body, err = post("/v1/tasks/"+tb.Task.ID+"/complete", `{"lease":"`+tb.Task.Lease+`","status":"succeeded"}`)
			if err != nil || code != http.StatusOK {
				b.Errorf("complete: %d %s %v", code, body, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lifecycles/s")
}
