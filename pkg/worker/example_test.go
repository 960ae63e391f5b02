package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

// A worker of the pull pool "upper" turns each task's text to upper case.
// The server here is in-process; a real worker calls parkinglot serve
// with a worker's token (role worker, pools [upper]).
func Example() {
	sched, _ := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	_ = sched.PutPool(context.Background(), core.PoolConfig{
		Name: "upper", Capacity: 2, MaxParked: 100, DefaultMaxWait: time.Minute, RunTimeout: time.Minute, Executor: core.ExecutorPull,
	})
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Scheduler: sched, Auth: httpapi.NewIdentityAuth(map[string]httpapi.Identity{
		"tenant-token": httpapi.TenantIdentity("acme"),
		"worker-token": httpapi.WorkerIdentity("upper-1", "upper"),
	})}))
	defer srv.Close()
	tenant, _ := client.New(srv.URL, "tenant-token")
	work, _ := client.New(srv.URL, "worker-token")
	defer tenant.CloseIdleConnections()
	defer work.CloseIdleConnections()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	for _, word := range []string{"parked", "until", "claimed"} {
		payload, _ := json.Marshal(word)
		_, _ = tenant.Submit(ctx, "upper", api.SubmitRequest{Payload: payload})
	}
	var mu sync.Mutex
	var results []string
	done := make(chan error)
	go func() {
		done <- worker.Run(ctx, work, worker.Options{Pool: "upper", Concurrency: 2, ClaimWait: time.Second},
			func(ctx context.Context, t *worker.Task) (any, error) {
				var s string
				if err := t.Decode(&s); err != nil {
					return nil, err
				}
				mu.Lock()
				results = append(results, strings.ToUpper(s))
				mu.Unlock()
				wg.Done()
				return strings.ToUpper(s), nil
			})
	}()
	wg.Wait()
	stop()
	fmt.Println("shutdown:", <-done)
	sort.Strings(results)
	fmt.Println(results)
	// Output:
	// shutdown: <nil>
	// [CLAIMED PARKED UNTIL]
}
