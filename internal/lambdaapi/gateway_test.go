package lambdaapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/api"
)

// echoFunction records the event it is given and answers with reply.
type echoFunction struct {
	mu    sync.Mutex
	got   []events.APIGatewayV2HTTPRequest
	reqID []string
	reply events.APIGatewayV2HTTPResponse
	fail  error
}

func (f *echoFunction) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	lc, _ := lambdacontext.FromContext(ctx)
	f.mu.Lock()
	f.got = append(f.got, ev)
	if lc != nil {
		f.reqID = append(f.reqID, lc.AwsRequestID)
	}
	f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	return json.Marshal(f.reply)
}

func echoGateway(t *testing.T, f *echoFunction) *httptest.Server {
	t.Helper()
	fns := map[lambdaapi.Function]lambda.Handler{}
	for _, fn := range lambdaapi.Functions {
		fns[fn] = f
	}
	gw, err := lambdaapi.NewGateway(lambdaapi.GatewayOptions{Functions: fns, Claims: map[string]map[string]string{"tok": {"tenant": "acme", "sub": "u"}}})
	require.NoError(t, err)
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return srv
}

func TestGatewayEvent(t *testing.T) {
	t.Parallel()
	f := &echoFunction{reply: events.APIGatewayV2HTTPResponse{
		StatusCode: 418, Headers: map[string]string{"X-One": "1"}, MultiValueHeaders: map[string][]string{"X-Many": {"a", "b"}},
		Cookies: []string{"c=1; Path=/"}, Body: base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 0x01}), IsBase64Encoded: true,
	}}
	srv := echoGateway(t, f)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/tasks/a%2Fb/complete?x=1&x=2&y=", strings.NewReader("\xff\xfe"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "bearer tok")
	req.Header.Add("X-Multi", "p")
	req.Header.Add("X-Multi", "q")
	req.Header.Set("Cookie", "s=1; t=2")
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	res.Body.Close()

	require.Equal(t, 418, res.StatusCode)
	require.Equal(t, []byte{0xff, 0x00, 0x01}, body)
	require.Equal(t, "1", res.Header.Get("X-One"))
	require.Equal(t, []string{"a", "b"}, res.Header.Values("X-Many"))
	require.Equal(t, []string{"c=1; Path=/"}, res.Header.Values("Set-Cookie"))

	require.Len(t, f.got, 1)
	ev := f.got[0]
	require.Equal(t, "2.0", ev.Version)
	require.Equal(t, "POST /v1/tasks/{id}/complete", ev.RouteKey)
	require.Equal(t, ev.RouteKey, ev.RequestContext.RouteKey)
	require.Equal(t, "/v1/tasks/a%2Fb/complete", ev.RawPath)
	require.Equal(t, "x=1&x=2&y=", ev.RawQueryString)
	require.Equal(t, map[string]string{"x": "1,2", "y": ""}, ev.QueryStringParameters)
	require.Equal(t, map[string]string{"id": "a/b"}, ev.PathParameters)
	require.Equal(t, "p,q", ev.Headers["x-multi"])
	require.Equal(t, []string{"s=1", "t=2"}, ev.Cookies)
	require.True(t, ev.IsBase64Encoded)
	require.Equal(t, base64.StdEncoding.EncodeToString([]byte("\xff\xfe")), ev.Body)
	require.Equal(t, "POST", ev.RequestContext.HTTP.Method)
	require.Equal(t, "127.0.0.1", ev.RequestContext.HTTP.SourceIP)
	require.NotEmpty(t, ev.RequestContext.RequestID)
	require.NotNil(t, ev.RequestContext.Authorizer)
	require.Equal(t, map[string]string{"tenant": "acme", "sub": "u"}, ev.RequestContext.Authorizer.JWT.Claims)
	require.Len(t, f.reqID, 1)
	require.NotEmpty(t, f.reqID[0], "the function's context carries a request id")

	// No route: $default. An unknown token: no authorizer claims.
	req, err = http.NewRequest(http.MethodDelete, srv.URL+"/v1/whatever", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer nope")
	res, err = srv.Client().Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Len(t, f.got, 2)
	require.Equal(t, "$default", f.got[1].RouteKey)
	require.Nil(t, f.got[1].RequestContext.Authorizer)
	require.Empty(t, f.got[1].Body)
	require.False(t, f.got[1].IsBase64Encoded)
}

func TestGatewayFunctionError(t *testing.T) {
	t.Parallel()
	srv := echoGateway(t, &echoFunction{fail: errors.New("boom")})
	res, err := srv.Client().Get(srv.URL + "/v1/pools")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusInternalServerError, res.StatusCode)
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	require.JSONEq(t, `{"error":{"code":"internal","message":"internal error"}}`, string(body))
}

// TestGatewayBodyTooLarge: a body over API Gateway's limit is refused in
// the API's error shape before any function is invoked.
func TestGatewayBodyTooLarge(t *testing.T) {
	t.Parallel()
	f := &echoFunction{}
	srv := echoGateway(t, f)
	res, err := srv.Client().Post(srv.URL+"/v1/pools/gpu/tasks", "application/json", strings.NewReader(strings.Repeat(" ", 10<<20+1)))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	var e api.Error
	require.NoError(t, json.Unmarshal(body, &e), "%s", body)
	require.Equal(t, api.ErrorDetail{Code: "payload_too_large", Message: e.Error.Message, Field: "body"}, e.Error)
	require.Empty(t, f.got)
}

func TestNewGatewayNeedsEveryFunction(t *testing.T) {
	t.Parallel()
	_, err := lambdaapi.NewGateway(lambdaapi.GatewayOptions{Functions: map[lambdaapi.Function]lambda.Handler{lambdaapi.Submit: &echoFunction{}}})
	require.ErrorContains(t, err, "no handler")
}
