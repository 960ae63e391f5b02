package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/loadtest"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

const multiConfig = `
listen: 127.0.0.1:%d
store: {type: postgres, dsn: '%s', schema: %s, maxConns: 12}
sweepInterval: 50ms
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
    - {token: initech-token, tenant: initech}
pools:
  - {name: render, capacity: 12, maxParked: 20000, defaultMaxWait: 15m, runTimeout: 2s}
  - {name: train, capacity: 4, maxParked: 20000, defaultMaxWait: 15m, runTimeout: 2s}
`

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// balancer is the load balancer in front of the servers: each request goes
// to the next server in turn, and to the one after it when a server refuses
// the connection (it is down: the request never reached it). A request cut
// off by a kill is answered 502, as a real balancer would.
type balancer struct {
	backends []string
	next     atomic.Uint64
	client   *http.Client
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	first := b.next.Add(1)
	for i := range uint64(len(b.backends)) {
		backend := b.backends[(first+i)%uint64(len(b.backends))]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, backend+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := b.client.Do(req)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			continue
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "every server is down", http.StatusBadGateway)
}

// TestMultiServer runs three servers on one database behind a balancer,
// under the load generator with permit-mode workers on all three (their
// long polls go to any server), kills one with SIGKILL in the middle of the
// run and restarts it. The independent observer (the workers' own clocks
// and mailboxes) must find no over-capacity instant across the servers,
// exactly one outcome per acknowledged task and no start after a deadline.
// 10,000 submissions; 1,500 under -short.
func TestMultiServer(t *testing.T) {
	t.Parallel()
	n := 10_000
	if testing.Short() {
		n = 1_500
	}
	schema := cluster.Schema(t)
	// Fixed ports: the killed server comes back where the balancer sends.
	var urls, configs []string
	for range 3 {
		port := freePort(t)
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", port))
		configs = append(configs, fmt.Sprintf(multiConfig, port, cluster.DSN, schema))
	}
	servers := make([]*testserver.Server, 3)
	for i := range servers {
		servers[i] = testserver.Start(t, bin, configs[i])
	}

	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	lb := &balancer{backends: urls, client: &http.Client{Transport: tr}}
	front := &http.Server{Handler: lb}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go front.Serve(l) //nolint:errcheck // ends with Close
	defer front.Close()

	// The run is bounded by its task count; the timeout only catches a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, cluster.DSN)
	require.NoError(t, err)
	defer db.Close(context.Background())
	type result struct {
		rep loadtest.Report
		err error
	}
	ran := make(chan result, 1)
	go func() {
		rep, err := loadtest.Run(ctx, loadtest.Config{
			Server:            "http://" + l.Addr().String(),
			Tokens:            []string{"acme-token", "globex-token", "initech-token"},
			Submissions:       n,
			Submitters:        24,
			Workers:           4,
			Hold:              2 * time.Millisecond,
			CrashFraction:     0.02,
			RunTimeout:        2 * time.Second,
			MaxWait:           15 * time.Minute,
			ShortWaitFraction: 0.01,
			ShortWait:         20 * time.Millisecond,
			Timeout:           15 * time.Minute,
		})
		ran <- result{rep, err}
	}()

	// Kill server 1 once a third of the tasks have ended, as the database
	// counts them, so that the kill lands in the middle of the run on any
	// machine; restart it at once on the same port.
	var res result
	for {
		var ended int
		require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM "+schema+".tasks WHERE state NOT IN ('parked', 'running')").Scan(&ended))
		if ended >= n/3 {
			servers[1].Kill()
			servers[1] = testserver.Start(t, bin, configs[1])
			break
		}
		select {
		case res = <-ran:
			t.Fatalf("the run ended before the kill: %d tasks ended, %v", ended, res.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	res = <-ran
	rep, err := res.rep, res.err
	require.NoError(t, err)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("load report:\n%s", b.String())

	require.Greater(t, rep.Submitted, n*9/10, "submissions were acknowledged")
	testserver.RequireInvariants(t, rep)
	// The load ran the pools' slots concurrently, on all servers (a loaded
	// machine's scheduling may keep some from overlapping at the
	// observer's instants, more so in the short run).
	require.GreaterOrEqual(t, rep.MaxOverlap["render"], 6, "the load was real")
	require.GreaterOrEqual(t, rep.MaxOverlap["train"], 3, "the load was real")
}
