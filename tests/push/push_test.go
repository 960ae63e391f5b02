// Package push tests push pools end to end: the real `parkinglot serve`
// binary on the embedded store delivering to HTTP targets on loopback,
// killed with SIGKILL while deliveries are under way.
package push

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

const config = `
listen: 127.0.0.1:0
store: {type: embedded, path: %s}
sweepInterval: 100ms
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
pools:
  - name: render
    capacity: %d
    maxParked: 100000
    defaultMaxWait: 30m
    runTimeout: 1m
    executor: push
    target: {type: http, url: %s, secret: s3cret, timeout: 2s, maxAttempts: 100}
`

// target is the pool's HTTP target and the test's observer: it counts the
// deliveries of each task and the distinct tasks it runs at once, from
// what it receives, independently of the server.
type target struct {
	mu       sync.Mutex
	received map[string][]time.Time // task id -> when each delivery arrived
	running  map[string]int         // task id -> deliveries of it being run
	max      int
	hold     chan struct{} // while open, deliveries wait in it
}

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if err := api.VerifySignature([]byte("s3cret"), r.Header.Get(api.SignatureHeader), body, time.Now()); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var pt api.PushedTask
	if err := json.Unmarshal(body, &pt); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tg.mu.Lock()
	tg.received[pt.ID] = append(tg.received[pt.ID], time.Now())
	tg.running[pt.ID]++
	tg.max = max(tg.max, len(tg.running))
	hold := tg.hold
	tg.mu.Unlock()
	select {
	case <-hold:
	case <-r.Context().Done():
	}
	time.Sleep(time.Millisecond)
	tg.mu.Lock()
	if tg.running[pt.ID]--; tg.running[pt.ID] == 0 {
		delete(tg.running, pt.ID)
	}
	tg.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(api.PushOutcome{Status: "succeeded", Result: json.RawMessage(fmt.Sprintf(`{"ran":%q}`, pt.ID))})
}

func (tg *target) deliveries() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	n := 0
	for _, at := range tg.received {
		n += len(at)
	}
	return n
}

// TestKillDuringDeliveries kills the server with SIGKILL three times while
// its target holds deliveries (started, pushed, outcome not recorded) and
// while it starts and pushes tasks: after restarts, every task was
// delivered at least once and ended exactly once, succeeded, and the target
// never ran more distinct tasks at once than the pool's capacity.
func TestKillDuringDeliveries(t *testing.T) {
	t.Parallel()
	const capacity, n = 6, 600
	tg := &target{received: map[string][]time.Time{}, running: map[string]int{}, hold: make(chan struct{})}
	close(tg.hold)
	srv := httptest.NewServer(tg)
	defer srv.Close()
	bin := testserver.Build(t)
	cfg := fmt.Sprintf(config, filepath.Join(t.TempDir(), "data"), capacity, srv.URL)
	ctx := t.Context()

	s := testserver.Start(t, bin, cfg)
	c, err := client.New(s.URL, "acme-token")
	require.NoError(t, err)
	ids := make([]string, 0, n)
	submit := func(k int) {
		for range k {
			res, err := c.Submit(ctx, "render", api.SubmitRequest{Payload: json.RawMessage(`{}`)})
			require.NoError(t, err)
			ids = append(ids, res.Task.ID)
		}
	}
	var killedAt []time.Time
	for round := range 3 {
		if round == 1 {
			// The target holds what it receives: the kill comes with
			// deliveries pushed and not answered.
			tg.mu.Lock()
			tg.hold = make(chan struct{})
			tg.mu.Unlock()
		}
		before := tg.deliveries()
		submit(n / 3)
		// Kill once deliveries are under way, whatever the machine's speed.
		for tg.deliveries() < before+capacity {
			require.NoError(t, ctx.Err())
			time.Sleep(time.Millisecond)
		}
		s.Kill()
		killedAt = append(killedAt, time.Now())
		tg.mu.Lock()
		if round == 1 {
			close(tg.hold)
		}
		tg.mu.Unlock()
		s = testserver.Start(t, bin, cfg)
		c, err = client.New(s.URL, "acme-token")
		require.NoError(t, err)
	}

	// Every task ends; the verdict is how, never how fast.
	deadline := time.Now().Add(5 * time.Minute)
	for _, id := range ids {
		for {
			task, err := c.Task(ctx, id)
			require.NoError(t, err)
			if task.State != "running" && task.State != "parked" {
				require.Equal(t, "succeeded", task.State, "task %s: %s", id, task.Error)
				require.JSONEq(t, fmt.Sprintf(`{"ran":%q}`, id), string(task.Result))
				break
			}
			require.True(t, time.Now().Before(deadline), "task %s still %s\n%s", id, task.State, s.Log())
			time.Sleep(20 * time.Millisecond)
		}
	}

	tg.mu.Lock()
	defer tg.mu.Unlock()
	repeated := 0
	for _, id := range ids {
		require.NotEmpty(t, tg.received[id], "task %s was never delivered", id)
		if len(tg.received[id]) > 1 {
			repeated++
		}
	}
	require.LessOrEqual(t, tg.max, capacity, "the target ran more distinct tasks at once than the capacity")
	require.GreaterOrEqual(t, repeated, capacity, "the held deliveries of the kill were pushed again")

	outcomes := map[string]int{}
	after := ""
	for {
		page, err := c.Mailbox(context.Background(), "acme", client.MailboxOptions{After: after, Limit: 1000})
		require.NoError(t, err)
		if len(page.Messages) == 0 {
			break
		}
		for _, m := range page.Messages {
			if m.Type != "started" {
				outcomes[m.TaskID]++
			}
		}
		after = page.Messages[len(page.Messages)-1].Cursor
	}
	for _, id := range ids {
		require.Equal(t, 1, outcomes[id], "task %s: one outcome", id)
	}
	resp, err := http.Get(s.URL + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Regexp(t, `parkinglot_push_attempts_total\{pool="render",result="delivered"\} [1-9]`, string(metrics))
	require.Contains(t, string(metrics), `parkinglot_push_attempt_seconds_count{pool="render"}`)
	t.Logf("%d tasks, %d deliveries, %d tasks delivered more than once, max %d at the target at once (capacity %d); kills at %v",
		len(ids), func() int {
			n := 0
			for _, at := range tg.received {
				n += len(at)
			}
			return n
		}(), repeated, tg.max, capacity, killedAt)
}
