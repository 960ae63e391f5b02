package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
)

// serveOn serves h over httpapi.Listener on a loopback port and returns
// its address.
func serveOn(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(httpapi.Listener(ln))
	}()
	t.Cleanup(func() {
		// Shutdown waits for every connection, also one net/http holds open
		// a moment after refusing its headers.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// roundTrip writes req as it is on a new connection and reads the answer.
func roundTrip(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	go func() { _, _ = io.WriteString(conn, req) }()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

// TestListenerErrorsAreJSON: what net/http answers by itself, before a
// handler runs, is the API's JSON error body on a Listener.
func TestListenerErrorsAreJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addr := serveOn(t, b.h)
	auth := "Authorization: Bearer tok-acme\r\n"
	for _, c := range []struct {
		name, req string
		code      int
		msg       string
	}{
		{"invalid escape in the path", "POST /v1/pools/%ZZ/tasks HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 2\r\n\r\n{}", 400, "escape"},
		{"no Host", "GET /v1/pools HTTP/1.1\r\n" + auth + "\r\n", 400, "refused before the API read it: missing required Host header"},
		{"two Hosts", "GET /v1/pools HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "not well-formed"},
		{"malformed request line", "GET /v1/pools\r\nHost: x\r\n\r\n", 400, "not well-formed"},
		{"malformed header", "GET /v1/pools HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400, "not well-formed"},
		{"bad method", "G(T /v1/pools HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not well-formed"},
		{"invalid header name", "GET /v1/pools HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400, "invalid header name"},
		{"bad Content-Length", "POST /v1/pools/gpu/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "not well-formed"},
		{"unsupported protocol", "GET /v1/pools HTTP/9.9\r\nHost: x\r\n\r\n", 505, "unsupported protocol version"},
		{"unsupported transfer coding", "POST /v1/pools/gpu/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "Transfer-Encoding"},
		{"headers too large", "GET /v1/pools HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", http.DefaultMaxHeaderBytes+8192) + "\r\n\r\n", 431, "too large"},
		{"unsupported expectation", "POST /v1/tasks/x/cancel HTTP/1.1\r\nHost: x\r\n" + auth + "Expect: teapot\r\nContent-Length: 2\r\n\r\n{}", 417, "Expect"},
	} {
		res, body := roundTrip(t, addr, c.req)
		require.Equal(t, c.code, res.StatusCode, "%s: %s", c.name, body)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"), c.name)
		var e api.Error
		require.NoError(t, json.Unmarshal(body, &e), "%s: %s", c.name, body)
		require.Equal(t, api.CodeInvalidRequest, e.Error.Code, c.name)
		require.Contains(t, e.Error.Message, c.msg, c.name)
	}

	// Answers of the handler pass as they are, on the same connection.
	res, body := roundTrip(t, addr, "GET /v1/pools HTTP/1.1\r\nHost: x\r\n"+auth+"Connection: close\r\n\r\n")
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.Contains(t, string(body), `"pools"`)
}

// TestListenerLeavesHandlerAnswers: a handler's answer is never taken for
// one of net/http's, even one that reads like it.
func TestListenerLeavesHandlerAnswers(t *testing.T) {
	t.Parallel()
	addr := serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Set("Connection", "close")
		if r.URL.Path == "/417" {
			w.WriteHeader(http.StatusExpectationFailed)
			_, _ = io.WriteString(w, "417 Expectation Failed")
			return
		}
		http.Error(w, "400 Bad Request", http.StatusBadRequest)
	}))
	res, body := roundTrip(t, addr, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Equal(t, "text/plain; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, "400 Bad Request\n", string(body))
	res, body = roundTrip(t, addr, "GET /417 HTTP/1.1\r\nHost: x\r\n\r\n")
	require.Equal(t, http.StatusExpectationFailed, res.StatusCode)
	require.Equal(t, "417 Expectation Failed", string(body))
}
