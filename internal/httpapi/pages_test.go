package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// TestConcurrentLargePages reads a mailbox of 100 results of 128 KiB (12.5
// MiB) with 8 clients at once, each walking it with limit=1000, and
// reports the server's heap while they do. A page holds at most
// core.MaxPageBytes of messages, so what the server holds is bounded by
// the clients times a page, not by the clients times the mailbox.
func TestConcurrentLargePages(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 100 MiB of pages")
	}
	const (
		tasks   = 100
		clients = 8
	)
	ctx := context.Background()
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, core.PoolConfig{Name: "big", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}))
	result := json.RawMessage(`"` + strings.Repeat("r", core.MaxResultBytes-2) + `"`)
	for range tasks {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "big"})
		require.NoError(t, err)
		_, err = s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: res.Task.ID, Lease: res.Task.Lease, Status: core.StateSucceeded, Result: result})
		require.NoError(t, err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"tok": "acme"})}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	var wg sync.WaitGroup
	var maxBody, pages atomic.Int64
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			after, n := "", 0
			for range 2*tasks + 1 {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/mailbox/acme?limit=1000&after="+after, nil)
				req.Header.Set("Authorization", "Bearer tok")
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d, %v: %.200s", res.StatusCode, err, body)
					return
				}
				var page api.MailboxPage
				if err := json.Unmarshal(body, &page); err != nil {
					errs <- err
					return
				}
				if len(page.Messages) == 0 {
					break
				}
				pages.Add(1)
				for cur := maxBody.Load(); int64(len(body)) > cur && !maxBody.CompareAndSwap(cur, int64(len(body))); cur = maxBody.Load() {
				}
				n += len(page.Messages)
				after = page.Next
			}
			if n != 2*tasks {
				errs <- fmt.Errorf("read %d messages, want %d", n, 2*tasks)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d clients read %d pages of a %d MiB mailbox; largest page %.1f MiB; heap in use %.0f MiB before, peak %.0f MiB",
		clients, pages.Load(), tasks*core.MaxResultBytes>>20, float64(maxBody.Load())/(1<<20),
		float64(before.HeapInuse)/(1<<20), float64(peak.Load())/(1<<20))
	require.LessOrEqual(t, maxBody.Load(), int64(core.MaxPageBytes+64<<10), "a page's response")
	// Generous: 8 pages of 4 MiB in flight, each held two or three times
	// over (the store's read, the encoded body, the client's copy), and
	// the mailbox itself.
	require.Less(t, peak.Load(), uint64(1<<30), "peak heap in use")
}
