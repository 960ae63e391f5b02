package lambdaapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// maxGatewayBody is API Gateway's request payload limit.
const maxGatewayBody = 10 << 20

// Gateway is an http.Handler that stands in for API Gateway in front of the
// functions: it selects the route of each request (Match; the $default route
// otherwise), turns the request into the API Gateway HTTP API (2.0) event,
// with the JWT authorizer's claims of a known bearer token, invokes the
// function's handler in-process through its JSON interface, as the Lambda
// runtime would, and writes its response.
//
// A request without a known bearer token reaches the function without
// authorizer claims, so that the function's own refusal (401 in the API's
// error shape) is what the client sees; API Gateway's JWT authorizer would
// answer such a request itself with {"message":"Unauthorized"}. The
// gateway's own errors (a body over API Gateway's 10 MB, a failed
// invocation) are in the API's error shape too, where API Gateway answers
// {"message": ...}.
type Gateway struct {
	functions map[Function]lambda.Handler
	claims    map[[sha256.Size]byte]map[string]string
	clock     core.Clock
	log       *slog.Logger
}

// GatewayOptions configure a Gateway.
type GatewayOptions struct {
	// Functions are the handlers by function; every route's function and
	// DefaultRoute must be present. Required.
	Functions map[Function]lambda.Handler
	// Claims maps a bearer token to the JWT claims its verified token would
	// carry.
	Claims map[string]map[string]string
	// Clock stamps the events' request time. Default: core.SystemClock.
	Clock core.Clock
	// Logger receives invocation failures. Default: discard.
	Logger *slog.Logger
}

// NewGateway returns a Gateway, or an error naming a missing function.
func NewGateway(opts GatewayOptions) (*Gateway, error) {
	for _, rt := range append(Routes(), Route{Function: DefaultRoute}) {
		if opts.Functions[rt.Function] == nil {
			return nil, fmt.Errorf("lambdaapi: gateway: no handler for function %s", rt.Function)
		}
	}
	g := &Gateway{functions: opts.Functions, claims: make(map[[sha256.Size]byte]map[string]string, len(opts.Claims)), clock: opts.Clock, log: opts.Logger}
	for token, c := range opts.Claims {
		g.claims[sha256.Sum256([]byte(token))] = c
	}
	if g.clock == nil {
		g.clock = core.SystemClock{}
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g, nil
}

// ServeHTTP serves one request through the function of its route.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxGatewayBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpapi.WriteError(w, http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge,
				fmt.Sprintf("the request body must be at most %d bytes", int64(maxGatewayBody)), "body")
			return
		}
		httpapi.WriteError(w, http.StatusBadRequest, api.CodeInvalidRequest, "reading the request body: "+err.Error(), "body")
		return
	}
	fn, ev := g.event(r, body)
	lc := &lambdacontext.LambdaContext{
		AwsRequestID:       newRequestID(),
		InvokedFunctionArn: "arn:aws:lambda:local:000000000000:function:parkinglot-" + string(fn),
	}
	ctx := lambdacontext.NewContext(r.Context(), lc)
	res, err := Invoke(ctx, g.functions[fn], ev)
	if err != nil {
		g.log.ErrorContext(ctx, "function invocation failed", "function", string(fn), "route", ev.RouteKey, "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, api.CodeInternal, "internal error", "")
		return
	}
	if err := writeResponse(w, res); err != nil {
		g.log.ErrorContext(ctx, "malformed function response", "function", string(fn), "route", ev.RouteKey, "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, api.CodeInternal, "internal error", "")
	}
}

// event builds the API Gateway event of r and picks its function.
func (g *Gateway) event(r *http.Request, body []byte) (Function, events.APIGatewayV2HTTPRequest) {
	fn, routeKey := DefaultRoute, "$default"
	var params map[string]string
	if rt, p, ok := match(r.Method, r.URL.EscapedPath()); ok {
		fn, routeKey, params = rt.Function, rt.Key(), p
	}
	now := g.clock.Now()
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       routeKey,
		RawPath:        r.URL.EscapedPath(),
		RawQueryString: r.URL.RawQuery,
		Headers:        map[string]string{},
		PathParameters: params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:   routeKey,
			AccountID:  "000000000000",
			Stage:      "$default",
			RequestID:  newRequestID(),
			APIID:      "local",
			DomainName: r.Host,
			Time:       now.Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:  now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, UserAgent: r.UserAgent(),
			},
		},
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ev.RequestContext.HTTP.SourceIP = host
	}
	for k, vs := range r.Header {
		if strings.EqualFold(k, "Cookie") {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						ev.Cookies = append(ev.Cookies, c)
					}
				}
			}
			continue
		}
		ev.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		ev.Headers["host"] = r.Host
	}
	if len(r.URL.Query()) > 0 {
		ev.QueryStringParameters = map[string]string{}
		for k, vs := range r.URL.Query() {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if len(body) > 0 {
		if utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	if c := g.claimsOf(r); c != nil {
		claims := make(map[string]string, len(c))
		for k, v := range c {
			claims[k] = v
		}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims},
		}
	}
	return fn, ev
}

// claimsOf returns the claims of r's bearer token, or nil.
func (g *Gateway) claimsOf(r *http.Request) map[string]string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil
	}
	return g.claims[sha256.Sum256([]byte(token))]
}

// Invoke calls h with ev through its JSON interface, as the Lambda runtime
// does, and decodes its response.
func Invoke(ctx context.Context, h lambda.Handler, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("lambdaapi: encode event: %w", err)
	}
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	var res events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &res); err != nil {
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("lambdaapi: decode response: %w", err)
	}
	return res, nil
}

// writeResponse writes an API Gateway response as API Gateway does.
func writeResponse(w http.ResponseWriter, res events.APIGatewayV2HTTPResponse) error {
	body := []byte(res.Body)
	if res.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(res.Body); err != nil {
			return fmt.Errorf("response body: %w", err)
		}
	}
	if res.StatusCode < 100 || res.StatusCode > 599 {
		return fmt.Errorf("response status %d", res.StatusCode)
	}
	hdr := w.Header()
	for k, v := range res.Headers {
		hdr.Set(k, v)
	}
	for k, vs := range res.MultiValueHeaders {
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	for _, c := range res.Cookies {
		hdr.Add("Set-Cookie", c)
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(body) // a failed write means the client left
	return nil
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
