package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/parkinglot/parkinglot/pkg/api"
)

// Listener returns ln with the errors that net/http's server answers by
// itself, before any handler sees the request, written as the API's JSON
// error body instead of text: 400 for a request it cannot read (an escape
// in the path that does not decode, such as %ZZ; a malformed request line
// or header; a missing Host), 431 for headers over the server's
// MaxHeaderBytes, 501 for a transfer coding it does not support, and 417
// for an Expect other than 100-continue. Serve the API's plain-HTTP
// http.Server on it (over TLS, it would see only encrypted bytes).
//
// net/http writes these answers straight to the connection, in a form no
// handler's response takes (no Date header, Content-Type before
// Connection); the connection closes after each.
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &errorConn{Conn: c}, nil
}

// errorConn rewrites net/http's own error answers as they are written.
type errorConn struct{ net.Conn }

func (c *errorConn) Write(p []byte) (int, error) {
	out, ok := serverError(p)
	if !ok {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after an answer, as
// it does on a bare TCP connection.
func (c *errorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// The forms of net/http's own answers (net/http/server.go, conn.serve).
const (
	textErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	unsupportedTE    = "Unsupported transfer encoding"
	expectFailed     = "HTTP/1.1 417 Expectation Failed\r\n"
)

// serverError returns the JSON answer that stands for p when p is one of
// net/http's own error answers.
func serverError(p []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return nil, false
	}
	if bytes.HasPrefix(p, []byte(expectFailed)) && bytes.HasSuffix(p, []byte("\r\n\r\n")) {
		return errorResponse(http.StatusExpectationFailed,
			"the Expect header is not supported: send no Expect, or Expect: 100-continue"), true
	}
	status, body, ok := bytes.Cut(rest, []byte(textErrorHeaders))
	if !ok || len(status) < 4 || status[3] != ' ' {
		return nil, false
	}
	code, err := strconv.Atoi(string(status[:3]))
	if err != nil {
		return nil, false
	}
	text := http.StatusText(code)
	var msg string
	switch {
	case code == http.StatusNotImplemented && string(body) == unsupportedTE:
		msg = "the request's Transfer-Encoding is not supported: send chunked or none"
	case code == http.StatusRequestHeaderFieldsTooLarge && bytes.Equal(body, status):
		msg = "the request's headers are too large"
	case code == http.StatusBadRequest && bytes.Equal(body, status) && string(status[4:]) == text:
		msg = "the request is not well-formed HTTP: a malformed request line or header, or a path with an escape that does not decode (such as %ZZ)"
	case bytes.Equal(body, status) && bytes.HasPrefix(status[4:], []byte(text+": ")):
		msg = "the request was refused before the API read it: " + string(status[4+len(text)+2:])
	default:
		return nil, false
	}
	return errorResponse(code, msg), true
}

func errorResponse(code int, msg string) []byte {
	body, _ := json.Marshal(api.Error{Error: api.ErrorDetail{Code: api.CodeInvalidRequest, Message: msg}})
	body = append(body, '\n')
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n"+
		"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n\r\n", code, http.StatusText(code), len(body))
	b.Write(body)
	return b.Bytes()
}
