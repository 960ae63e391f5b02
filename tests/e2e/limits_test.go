package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

// hangGuard bounds every wait on the server in these tests. It is no
// measure of speed: the server is expected to act within seconds, and a
// wait that reaches the guard means it never did.
const hangGuard = 60 * time.Second

const oneToken = `
store: {type: memory}
log: {level: debug, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
pools:
  - {name: gpu, capacity: 1, maxParked: 10, defaultMaxWait: 1m, runTimeout: 1m}
`

// rawRequest opens a connection to base and sends a POST's headers that
// announce a body of contentLength bytes, with the bearer token if any.
func rawRequest(t *testing.T, base, path, token string, contentLength int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	hdr := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: parkinglot\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, contentLength)
	if token != "" {
		hdr += "Authorization: Bearer " + token + "\r\n"
	}
	_, err = io.WriteString(c, hdr+"\r\n")
	require.NoError(t, err)
	return c
}

// ending is how the server ended a connection: the status line of its
// answer, if it sent one, and whether it then closed the connection.
type ending struct {
	status string
	closed bool
	after  time.Duration
}

// awaitEnd reads c until the server closes it or the hang guard passes.
func awaitEnd(c net.Conn, start time.Time) ending {
	_ = c.SetReadDeadline(time.Now().Add(hangGuard))
	br := bufio.NewReader(c)
	var e ending
	if line, err := br.ReadString('\n'); err == nil {
		e.status = strings.TrimSpace(line)
	}
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	e.closed = !(errors.As(err, &ne) && ne.Timeout())
	e.after = time.Since(start)
	return e
}

// trickle sends one byte of body every interval until stop is closed or a
// write fails.
func trickle(c net.Conn, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := c.Write([]byte(" ")); err != nil {
			return
		}
	}
}

// otherClient requests GET /v1/pools in a loop until stop is closed and
// returns the latencies of its requests and the errors it met.
func otherClient(t *testing.T, base string, stop <-chan struct{}) (latencies []time.Duration, errs []error) {
	hc := &http.Client{Transport: &http.Transport{}, Timeout: hangGuard}
	defer hc.CloseIdleConnections()
	for {
		select {
		case <-stop:
			return latencies, errs
		case <-time.After(20 * time.Millisecond):
		}
		req, err := http.NewRequest(http.MethodGet, base+"/v1/pools", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer acme-token")
		start := time.Now()
		resp, err := hc.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		latencies = append(latencies, time.Since(start))
	}
}

func logLatencies(t *testing.T, what string, l []time.Duration) {
	t.Helper()
	if len(l) == 0 {
		t.Logf("%s: no request completed", what)
		return
	}
	slices.Sort(l)
	t.Logf("%s: %d requests, p50 %s, p99 %s, max %s", what, len(l),
		l[len(l)/2], l[len(l)*99/100], l[len(l)-1])
}

// TestSlowClientsAreCut: a client that sends its body a byte at a time, or
// part of it and then nothing, is cut off by the read timeout (a token
// does not buy more time), while other clients are served meanwhile.
// Without a token, it is refused at once, its body unread.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\nreadTimeout: 2s\nwriteTimeout: 2s\n"+oneToken)

	stopOther := make(chan struct{})
	type otherResult struct {
		latencies []time.Duration
		errs      []error
	}
	other := make(chan otherResult, 1)
	go func() {
		l, errs := otherClient(t, srv.URL, stopOther)
		other <- otherResult{l, errs}
	}()

	// 1,000 bytes of body at a byte every 100 ms would take 100 s, past
	// the hang guard: only the server can end these requests within it.
	const bodyLen = 1000
	stopTrickles := make(chan struct{})
	defer close(stopTrickles)
	clients := []struct {
		name, token string
		send        func(net.Conn)
	}{
		{"slow body, token", "acme-token", func(c net.Conn) { go trickle(c, 100*time.Millisecond, stopTrickles) }},
		{"stalled body, token", "acme-token", func(c net.Conn) { _, _ = io.WriteString(c, `{"payload": {"a":`) }},
		{"slow body, no token", "", func(c net.Conn) { go trickle(c, 100*time.Millisecond, stopTrickles) }},
		{"stalled body, no token", "", func(c net.Conn) { _, _ = io.WriteString(c, `{"payload": {"a":`) }},
	}
	endings := make([]ending, len(clients))
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c := rawRequest(t, srv.URL, "/v1/pools/gpu/tasks", cl.token, bodyLen)
			cl.send(c)
			endings[i] = awaitEnd(c, start)
		}()
	}
	wg.Wait()
	close(stopOther)
	res := <-other

	for i, cl := range clients {
		e := endings[i]
		t.Logf("%s: %q, closed after %s", cl.name, e.status, e.after.Round(time.Millisecond))
		require.True(t, e.closed, "%s: the server still held the connection after %s", cl.name, hangGuard)
		if cl.token == "" {
			require.True(t, strings.HasPrefix(e.status, "HTTP/1.1 401 "), "%s: %q", cl.name, e.status)
		} else if e.status != "" {
			// An answer, if the write deadline let one out, is an error.
			require.Regexp(t, `^HTTP/1\.1 4\d\d `, e.status, cl.name)
		}
	}
	logLatencies(t, "other client meanwhile", res.latencies)
	require.Empty(t, res.errs, "the other client's requests failed")
	require.NotEmpty(t, res.latencies, "the other client was not served")

	// Nothing was submitted by the cut requests.
	c, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	pool, err := c.Pool(context.Background(), "gpu")
	require.NoError(t, err)
	require.Zero(t, pool.Running+pool.Parked)
}

// TestRefusalReadsNoBody: an unauthenticated request, or one for no route,
// is answered at once, without waiting for a body that never comes: with a
// read timeout of an hour, only an answer that does not read the body
// comes within the hang guard.
func TestRefusalReadsNoBody(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\nreadTimeout: 1h\nwriteTimeout: 1h\n"+oneToken)
	for _, tc := range []struct{ path, token, status string }{
		{"/v1/pools/gpu/tasks", "", "401"},
		{"/v1/pools/gpu/tasks", "wrong-token", "401"},
		{"/v1/tasks/x/complete", "", "401"},
		{"/v1/nowhere", "", "404"},
		{"/v1/pools", "acme-token", "405"},
	} {
		start := time.Now()
		c := rawRequest(t, srv.URL, tc.path, tc.token, 1000)
		_, err := io.WriteString(c, `{"payload":`)
		require.NoError(t, err)
		e := awaitEnd(c, start)
		t.Logf("POST %s (token %q) with a stalled body: %q, closed after %s", tc.path, tc.token, e.status, e.after.Round(time.Millisecond))
		require.True(t, strings.HasPrefix(e.status, "HTTP/1.1 "+tc.status+" "), "POST %s: %q", tc.path, e.status)
		require.True(t, e.closed, "POST %s: the connection stayed open, waiting for the body", tc.path)
	}
}

// TestLongPollOutlivesTimeouts: a mailbox long poll waits its full wait,
// and gets a message that arrives after the read and write timeouts have
// passed.
func TestLongPollOutlivesTimeouts(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\nreadTimeout: 1s\nwriteTimeout: 1s\n"+oneToken)
	c, err := client.New(srv.URL, "acme-token")
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	ctx := context.Background()

	type pollResult struct {
		page api.MailboxPage
		err  error
	}
	polled := make(chan pollResult, 1)
	go func() {
		page, err := c.Mailbox(ctx, "acme", client.MailboxOptions{Wait: 20 * time.Second})
		polled <- pollResult{page, err}
	}()
	// Past both timeouts, a task starts and posts its started message.
	select {
	case r := <-polled:
		t.Fatalf("the long poll ended before any message: %+v, %v", r.page, r.err)
	case <-time.After(3 * time.Second):
	}
	sub, err := c.Submit(ctx, "gpu", api.SubmitRequest{})
	require.NoError(t, err)
	select {
	case r := <-polled:
		require.NoError(t, r.err)
		require.Len(t, r.page.Messages, 1)
		require.Equal(t, sub.Task.ID, r.page.Messages[0].TaskID)
	case <-time.After(hangGuard):
		t.Fatal("the long poll did not end")
	}
}

// TestConnectionCap: past maxConnections, a connection waits until one of
// those being served closes.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\nmaxConnections: 2\nmetrics: {listen: 127.0.0.1:0}\n"+oneToken)
	metricsURL := srv.Logged("parkinglot listening", "metrics")
	require.NotEmpty(t, metricsURL)
	// Start's health check left a keep-alive connection open.
	http.DefaultClient.CloseIdleConnections()

	// Two long polls hold both connections.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_, err = io.WriteString(c, "GET /v1/mailbox/nobody?wait=20s HTTP/1.1\r\nHost: parkinglot\r\nAuthorization: Bearer acme-token\r\n\r\n")
		require.NoError(t, err)
		held = append(held, c)
	}
	deadline := time.Now().Add(hangGuard)
	for !strings.Contains(scrapeURL(t, metricsURL), "\nparkinglot_http_requests_in_flight 2\n") {
		require.True(t, time.Now().Before(deadline), "the long polls did not reach the handler")
		time.Sleep(10 * time.Millisecond)
	}

	// A third client waits...
	answered := make(chan error, 1)
	start := time.Now()
	go func() {
		hc := &http.Client{Transport: &http.Transport{}, Timeout: hangGuard}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(srv.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("a third connection was served while two were (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	// ...until a held one closes.
	require.NoError(t, held[0].Close())
	select {
	case err := <-answered:
		require.NoError(t, err)
		t.Logf("the third connection was served %s after it was opened", time.Since(start).Round(time.Millisecond))
	case <-time.After(hangGuard):
		t.Fatal("the third connection was not served after a held one closed")
	}
}

func scrapeURL(t *testing.T, url string, header ...string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if len(header) == 2 {
		req.Header.Set(header[0], header[1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return fmt.Sprintf("%d\n%s", resp.StatusCode, b)
}

// TestMetricsListenAndToken: metrics.listen serves /metrics on its own
// listener and no longer beside the API; metrics.token requires a bearer
// token on /metrics wherever it is served.
func TestMetricsListenAndToken(t *testing.T) {
	t.Parallel()
	t.Run("listen and token", func(t *testing.T) {
		t.Parallel()
		srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\nmetrics: {listen: 127.0.0.1:0, token: scrape-token}\n"+oneToken)
		metricsURL := srv.Logged("parkinglot listening", "metrics")
		require.NotEmpty(t, metricsURL)
		require.NotEqual(t, srv.URL+"/metrics", metricsURL)

		require.True(t, strings.HasPrefix(scrapeURL(t, srv.URL+"/metrics"), "404\n"), "/metrics is still served beside the API")
		require.True(t, strings.HasPrefix(scrapeURL(t, metricsURL), "401\n"))
		require.True(t, strings.HasPrefix(scrapeURL(t, metricsURL, "Authorization", "Bearer acme-token"), "401\n"))
		m := scrapeURL(t, metricsURL, "Authorization", "Bearer scrape-token")
		require.True(t, strings.HasPrefix(m, "200\n"), m)
		require.Contains(t, m, `parkinglot_pool_capacity{pool="gpu"} 1`)
		require.True(t, strings.HasPrefix(scrapeURL(t, strings.TrimSuffix(metricsURL, "/metrics")+"/v1/pools", "Authorization", "Bearer acme-token"), "404\n"),
			"the metrics listener serves the API")
		require.Equal(t, 0, srv.Stop(t, 15*time.Second))
	})
	t.Run("token only", func(t *testing.T) {
		t.Parallel()
		srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\nmetrics: {token: scrape-token}\n"+oneToken)
		require.Equal(t, srv.URL+"/metrics", srv.Logged("parkinglot listening", "metrics"))
		require.True(t, strings.HasPrefix(scrapeURL(t, srv.URL+"/metrics"), "401\n"))
		m := scrapeURL(t, srv.URL+"/metrics", "Authorization", "Bearer scrape-token")
		require.True(t, strings.HasPrefix(m, "200\n"), m)
		require.Contains(t, m, `parkinglot_pool_capacity{pool="gpu"} 1`)
	})
}

// TestVersion: `version` and `--version` print the build's version, commit
// and Go version, and /healthz says the same after its "ok".
func TestVersion(t *testing.T) {
	t.Parallel()
	var outs []string
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		require.NoError(t, err, arg)
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		require.Len(t, lines, 3, "%s", out)
		require.Regexp(t, `^version: \S`, lines[0])
		require.Regexp(t, `^commit: \S`, lines[1])
		require.Equal(t, "go: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH, lines[2])
		outs = append(outs, string(out))
	}
	require.Equal(t, outs[0], outs[1])

	srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\n"+oneToken)
	resp, err := http.Get(srv.URL + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "ok\n"+outs[0], string(body))
}

// TestOpenListenNeedsTokens: without tokens, a listen address that other
// hosts can reach is refused at start-up unless auth.anonymous says so,
// which serves every client as tenant "default".
func TestOpenListenNeedsTokens(t *testing.T) {
	t.Parallel()
	const rest = "store: {type: memory}\nlog: {format: json}\npools: [{name: gpu, capacity: 1}]\n"
	for _, listen := range []string{"0.0.0.0:0", ":0"} {
		path := filepath.Join(t.TempDir(), "open.yaml")
		require.NoError(t, os.WriteFile(path, []byte("listen: \""+listen+"\"\n"+rest), 0o600))
		// A server that starts is stopped by the hang guard, and fails below.
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		out, err := exec.CommandContext(ctx, bin, "serve", "--config", path).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "serve started on %s without tokens: %s", listen, out)
		require.Contains(t, string(out), "auth.tokens: listen "+listen+" accepts clients from other hosts")
		require.Contains(t, string(out), "auth.anonymous: true")
	}

	srv := testserver.Start(t, bin, "listen: 127.0.0.1:0\nauth: {anonymous: true}\n"+rest)
	require.Contains(t, srv.Log(), "auth.anonymous: serving every client")
	c, err := client.New(srv.URL, "")
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	res, err := c.Submit(context.Background(), "gpu", api.SubmitRequest{})
	require.NoError(t, err)
	require.Equal(t, "default", res.Task.Tenant)
	require.Equal(t, 0, srv.Stop(t, 15*time.Second))
}
