package crash

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/loadtest"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const configTemplate = `
listen: 127.0.0.1:%d
store: {type: embedded, path: %s}
sweepInterval: 50ms
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
pools:
  - {name: render, capacity: 12, maxParked: 20000, defaultMaxWait: 15m, runTimeout: 2s}
  - {name: train, capacity: 4, maxParked: 20000, defaultMaxWait: 15m, runTimeout: 2s}
`

// server is one run of `parkinglot serve`, which the test kills.
type server struct {
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	log    strings.Builder
}

func start(t *testing.T, bin, config, url string) *server {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", config)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	s := &server{cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
		_ = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("parkinglot serve exited at start:\n%s", s.logs())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.kill()
			t.Fatalf("parkinglot serve not healthy within 30s:\n%s", s.logs())
		}
	}
}

func (s *server) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestCrashRestart(t *testing.T) {
	bin := testserver.Build(t)
	data := filepath.Join(t.TempDir(), "data")
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	config := filepath.Join(t.TempDir(), "parkinglot.yaml")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, configTemplate, port, data), 0o600))

	var mu sync.Mutex
	srv := start(t, bin, config, url)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			t.Logf("last server log:\n%s", srv.logs())
		}
		srv.kill()
	})

	// The run is bounded by its task count; the timeouts only catch a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 16*time.Minute)
	defer cancel()
	runDone := make(chan struct{})
	// The killer: SIGKILL at random points of the run, restart at once on
	// the same directory and port.
	const kills = 4
	killed := 0
	killerDone := make(chan struct{})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	go func() {
		defer close(killerDone)
		for killed < kills {
			select {
			case <-runDone:
				return
			case <-time.After(300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond)))):
			}
			mu.Lock()
			srv.kill()
			killed++
			srv = start(t, bin, config, url)
			mu.Unlock()
		}
	}()

	start := time.Now()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Server:            url,
		Tokens:            []string{"acme-token", "globex-token"},
		Submissions:       4000,
		Submitters:        16,
		Workers:           4,
		Hold:              2 * time.Millisecond,
		CrashFraction:     0.02,
		RunTimeout:        2 * time.Second,
		MaxWait:           15 * time.Minute,
		ShortWaitFraction: 0.02,
		ShortWait:         20 * time.Millisecond,
		Timeout:           15 * time.Minute,
	})
	close(runDone)
	<-killerDone
	require.NoError(t, err)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("%d kills; load report:\n%s", killed, b.String())

	require.Equal(t, kills, killed, "every kill happened while the load ran")
	require.Greater(t, rep.Submitted, 500, "submissions were acknowledged")
	// NoOutcome counts acknowledged tasks only.
	testserver.RequireInvariants(t, rep)
	// The load filled the pool (a loaded machine's scheduling may keep the
	// last slot or two from overlapping at the observer's instants).
	require.GreaterOrEqual(t, rep.MaxOverlap["render"], 9, "the load was real")

	// Stop the last server and read the data directory itself: every task
	// in the audit trail has its whole history there, ending in the state
	// the task item holds, and at least every acknowledged task is there.
	mu.Lock()
	srv.kill()
	mu.Unlock()
	// parkinglot check's verdict on the directory the last kill left.
	check, err := pebblestore.Check(data, pebblestore.Options{})
	require.NoError(t, err)
	require.False(t, check.Clean, "the last process was killed")
	require.Empty(t, check.Findings, "pebblestore.Check after the last kill")
	t.Logf("check after the last kill: tasks by state %v, %d messages, %d events, no findings", check.Tasks, check.Messages, check.Events)
	s, err := pebblestore.Open(data, pebblestore.Options{})
	require.NoError(t, err)
	defer s.Close()
	ctx = context.Background()
	// A task still parked or running (a submission the server took but
	// whose answer the kill cut off) is not forgotten: the sweeper finds it
	// by its due time, and a parked one is in its pool's queue or flagged
	// for the outbox re-send.
	due, err := s.Due(ctx, time.Now().Add(time.Hour), 1<<20)
	require.NoError(t, err)
	live := map[string]bool{}
	for _, id := range due {
		live[id] = true
	}
	queued := map[string]bool{}
	for _, pool := range []string{"render", "train"} {
		ds, err := s.Receive(ctx, pool, 1<<20)
		require.NoError(t, err)
		for _, d := range ds {
			queued[d.TaskID] = true
		}
	}
	tasks, open := 0, 0
	for _, tenant := range []string{"acme", "globex"} {
		n, o := checkAudit(t, s, tenant, start.Add(-time.Minute), time.Now().Add(time.Minute), live, queued)
		tasks += n
		open += o
	}
	t.Logf("%d tasks in the audit trail, %d of them not finished (submissions whose answer a kill cut off)", tasks, open)
	require.GreaterOrEqual(t, tasks, rep.Submitted, "every acknowledged submission is in the audit trail")
	checkRead(t, s, rep)
}

// checkRead holds what the workers read over the run — every mailbox
// message, every completion the server acknowledged — against the data
// directory after the last kill: nothing a client saw is gone. A task runs
// at most once, so a started message's lease stays the task's lease, and an
// outcome message names the task's final state. No cursor names two
// messages.
func checkRead(t *testing.T, s *pebblestore.Store, rep loadtest.Report) {
	t.Helper()
	ctx := context.Background()
	require.NotEmpty(t, rep.Read)
	byCursor := map[string]api.Message{}
	started := 0
	for _, m := range rep.Read {
		k := fmt.Sprintf("%d/%s/%s", m.Tenant, m.Recipient, m.Cursor)
		if prev, ok := byCursor[k]; ok {
			require.Equal(t, prev.TaskID+"/"+prev.Type, m.TaskID+"/"+m.Type, "cursor %s was read as two messages", k)
		}
		byCursor[k] = m.Message
		task, err := s.Task(ctx, m.TaskID)
		require.NoError(t, err, "task %s of a %s message read before a kill", m.TaskID, m.Type)
		if m.Type == "started" {
			started++
			require.Equal(t, m.Lease, task.Lease, "task %s: the lease a worker read is the task's lease after the kills", m.TaskID)
			require.NotEqual(t, core.StateParked, task.State, "task %s: read as started, parked after the kills", m.TaskID)
			continue
		}
		require.Equal(t, m.Type, string(task.State), "task %s: the outcome a worker read is the task's state after the kills", m.TaskID)
	}
	for _, id := range rep.CompletedIDs {
		task, err := s.Task(ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, task.State, "task %s: a completion the server acknowledged survives the kills", id)
	}
	t.Logf("checked %d messages read (%d started) and %d acknowledged completions against the data directory", len(rep.Read), started, len(rep.CompletedIDs))
}

// checkAudit checks tenant's audit trail against its task items and
// returns how many tasks it holds and how many of them are not finished.
func checkAudit(t *testing.T, s *pebblestore.Store, tenant string, from, to time.Time, live, queued map[string]bool) (int, int) {
	t.Helper()
	ctx := context.Background()
	history := map[string][]core.Event{}
	open := 0
	q := core.AuditQuery{Tenant: tenant, From: from, To: to, Limit: core.MaxPageLimit}
	for {
		evs, err := s.Events(ctx, q)
		require.NoError(t, err)
		for _, e := range evs {
			history[e.TaskID] = append(history[e.TaskID], e)
		}
		if len(evs) < q.Limit {
			break
		}
		last := evs[len(evs)-1]
		q.After = core.AuditCursor{At: last.At, Seq: last.Seq}
	}
	for id, evs := range history {
		task, err := s.Task(ctx, id)
		require.NoError(t, err, "task %s of the audit trail", id)
		if !task.State.Terminal() {
			open++
			require.True(t, live[id], "task %s is %s but not in the due index", id, task.State)
			if task.State == core.StateParked {
				require.True(t, queued[id] || task.Unsent, "task %s is parked but neither queued nor flagged unsent", id)
			}
		}
		require.Equal(t, core.EventSubmit, evs[0].Type, "task %s: history starts with its submission: %v", id, evs)
		state := core.State("")
		for _, e := range evs {
			require.Equal(t, state, e.From, "task %s: each transition starts where the last ended: %v", id, evs)
			state = e.To
		}
		require.Equal(t, task.State, state, "task %s: the history ends in the task's state", id)
		require.Equal(t, !task.StartedAt.IsZero(), ranOnce(evs), "task %s: a transition to running iff the task started: %v", id, evs)
	}
	return len(history), open
}

// ranOnce reports whether the history enters running, which it may do once.
func ranOnce(evs []core.Event) bool {
	n := 0
	for _, e := range evs {
		if e.To == core.StateRunning {
			n++
		}
	}
	return n == 1
}
