package lambdaapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parkinglot/parkinglot/internal/httpapi"
)

// toRequest turns an API Gateway HTTP API (2.0) event into the request it
// stands for. The request's context carries the event's request context,
// for ClaimAuth.
func toRequest(ctx context.Context, ev *events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	method := ev.RequestContext.HTTP.Method
	if method == "" {
		return nil, fmt.Errorf("event without requestContext.http.method")
	}
	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("event path %q is not absolute", path)
	}
	target := path
	if ev.RawQueryString != "" {
		target += "?" + ev.RawQueryString
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, &pathError{field: badParam(path), err: err}
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return nil, fmt.Errorf("event body: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(withRequestContext(ctx, &ev.RequestContext), method, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("event request: %w", err)
	}
	req.URL = u
	req.RequestURI = target
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	for k, v := range ev.Headers {
		req.Header.Set(k, v) // API Gateway joins repeated headers with commas
	}
	if len(ev.Cookies) > 0 {
		req.Header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	req.Host = req.Header.Get("Host")
	if req.Host == "" {
		req.Host = ev.RequestContext.DomainName
	}
	req.Header.Del("Host")
	if ip := ev.RequestContext.HTTP.SourceIP; ip != "" {
		req.RemoteAddr = net.JoinHostPort(ip, "0")
	}
	return req, nil
}

// pathError is a request path with an escape that does not decode: the
// client's bad input, answered 400 in the API's error shape rather than
// failing the invocation. field names the path parameter it is in, or is
// "path".
type pathError struct {
	field string
	err   error
}

func (e *pathError) Error() string { return "event path: " + e.err.Error() }

// badParam names the route parameter of the escaped path whose escape does
// not decode, or returns "path".
func badParam(escapedPath string) string {
	_, p, _, _ := httpapi.Match("", escapedPath) // the parameters of any method's route
	for name, raw := range p {
		if _, err := url.PathUnescape(raw); err != nil {
			return name
		}
	}
	return "path"
}

// responseWriter records what the API handler writes.
type responseWriter struct {
	hdr  http.Header
	code int
	body bytes.Buffer
}

func newResponseWriter() *responseWriter { return &responseWriter{hdr: http.Header{}} }

func (w *responseWriter) Header() http.Header { return w.hdr }

func (w *responseWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(p)
}

// response is the API Gateway response of what was written: headers joined
// with commas (Set-Cookie as cookies), the body as text when it is UTF-8 and
// base64-encoded otherwise.
func (w *responseWriter) response() events.APIGatewayV2HTTPResponse {
	code := w.code
	if code == 0 {
		code = http.StatusOK
	}
	res := events.APIGatewayV2HTTPResponse{StatusCode: code, Headers: make(map[string]string, len(w.hdr))}
	for k, vs := range w.hdr {
		if k == "Set-Cookie" {
			res.Cookies = append(res.Cookies, vs...)
			continue
		}
		res.Headers[k] = strings.Join(vs, ",")
	}
	if b := w.body.Bytes(); utf8.Valid(b) {
		res.Body = string(b)
	} else {
		res.Body = base64.StdEncoding.EncodeToString(b)
		res.IsBase64Encoded = true
	}
	return res
}
