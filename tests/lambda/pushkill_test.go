package lambda

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

// asyncTarget is an async HTTP target and the test's observer: it takes
// each push (202) unless it holds them, and its worker completes what it
// took through the API with the lease. It counts the deliveries of each
// task and the distinct tasks it runs at once.
type asyncTarget struct {
	mu       sync.Mutex
	received map[string]int
	running  map[string]bool
	done     map[string]bool
	max      int
	hold     chan struct{} // while open, pushes wait in it, unanswered
	work     chan api.PushedTask
}

func (a *asyncTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var pt api.PushedTask
	if err != nil || json.Unmarshal(body, &pt) != nil {
		http.Error(w, "not a pushed task", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.received[pt.ID]++
	if !a.done[pt.ID] {
		a.running[pt.ID] = true
		a.max = max(a.max, len(a.running))
	}
	hold := a.hold
	a.mu.Unlock()
	select {
	case <-hold:
	case <-r.Context().Done():
		return // the pushing process died: the push is lost, as far as it knows
	}
	w.WriteHeader(http.StatusAccepted)
	a.work <- pt
}

func (a *asyncTarget) deliveries() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deliveriesLocked()
}

// TestPushKill kills the Lambda runtime with SIGKILL while its async HTTP
// target holds the deliveries of every slot (started, pushed, outcome not
// recorded), restarts it on the same table and queues, and checks that
// every task was delivered at least once, ended exactly once, and that the
// target never ran more distinct tasks at once than the capacity.
func TestPushKill(t *testing.T) {
	t.Parallel()
	const n, capacity = 24, 3
	tg := &asyncTarget{received: map[string]int{}, running: map[string]bool{}, done: map[string]bool{},
		hold: make(chan struct{}), work: make(chan api.PushedTask, 4*n)}
	target := httptest.NewServer(tg)
	defer target.Close()
	cfg := pushConfig(capacity, fmt.Sprintf("{type: http, url: %q, mode: async, timeout: 2s, maxAttempts: 100}", target.URL), "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard, not a speed bound
	defer cancel()

	srv := testserver.Start(t, bin, cfg)
	acme, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	// Keyed submissions, four at a time: those that wait for a held
	// delivery when the server dies are found again by their keys.
	submitAll := func(c *client.Client, tolerate bool) []string {
		ids := make([]string, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				res, err := c.Submit(ctx, "p", api.SubmitRequest{Key: fmt.Sprint("job-", i), Payload: json.RawMessage(`{}`)})
				if !tolerate {
					require.NoError(t, err)
				}
				ids[i] = res.Task.ID
			}()
		}
		wg.Wait()
		return ids
	}
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		submitAll(acme, true) // cut off by the kill
	}()
	// Kill once every slot's delivery is held, whatever the machine's speed.
	for tg.deliveries() < capacity {
		require.NoError(t, ctx.Err())
		time.Sleep(5 * time.Millisecond)
	}
	srv.Kill()
	<-submitted
	acme.CloseIdleConnections()
	close(tg.hold) // the restarted server's pushes are taken at once

	srv = testserver.Start(t, bin, cfg)
	acme, err = client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	t.Cleanup(acme.CloseIdleConnections)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the target's worker
		defer wg.Done()
		for pt := range tg.work {
			tg.mu.Lock()
			delete(tg.running, pt.ID)
			first := !tg.done[pt.ID]
			tg.done[pt.ID] = true
			tg.mu.Unlock()
			if !first {
				continue // a repeated delivery of a task it already ran
			}
			if _, err := acme.Complete(ctx, pt.ID, api.CompleteRequest{Lease: pt.Lease, Status: "succeeded", Result: json.RawMessage(`"ran"`)}); err != nil {
				t.Errorf("complete %s: %v", pt.ID, err)
			}
		}
	}()
	ids := submitAll(acme, false) // replays of the keys that took, new tasks for the others
	got := outcomesOf(ctx, t, acme, ids)
	close(tg.work)
	wg.Wait()

	repeated := 0
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for _, id := range ids {
		require.Equal(t, "succeeded", got[id].Type, "task %s: %s", id, got[id].Error)
		require.JSONEq(t, `"ran"`, string(got[id].Result))
		require.Positive(t, tg.received[id], "task %s never delivered", id)
		if tg.received[id] > 1 {
			repeated++
		}
	}
	require.GreaterOrEqual(t, repeated, capacity, "the deliveries held at the kill were pushed again")
	require.LessOrEqual(t, tg.max, capacity, "distinct tasks at the target at once")
	t.Logf("%d tasks, %d deliveries, %d delivered more than once, at most %d at the target at once (capacity %d)", n, tg.deliveriesLocked(), repeated, tg.max, capacity)
	require.Equal(t, 0, srv.Stop(t, 30*time.Second))
}

func (a *asyncTarget) deliveriesLocked() int {
	n := 0
	for _, c := range a.received {
		n += c
	}
	return n
}
