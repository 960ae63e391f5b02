package lambdaapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// TestCustomResourceAnswers checks expire's answers to CloudFormation on a
// memory store: a Create applies the pools and answers SUCCESS with the
// counts; a request it cannot serve (another resource type, pools that do
// not parse, an invalid pool, a function without a pool store) answers
// FAILED with the reason, so that the stack rolls back rather than waits;
// other functions refuse the event.
func TestCustomResourceAnswers(t *testing.T) {
	t.Parallel()
	answers := make(chan cfn.Response, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var res cfn.Response
		// A PUT without Content-Type: the pre-signed URL was signed without one.
		if r.Method != http.MethodPut || r.Header.Get("Content-Type") != "" || json.NewDecoder(r.Body).Decode(&res) != nil {
			res = cfn.Response{Status: "not a PUT of JSON without Content-Type"}
		}
		answers <- res
	}))
	defer srv.Close()
	store := memstore.New(memstore.Options{})
	s, err := core.New(core.Config{Backend: store})
	require.NoError(t, err)
	handler := func(fn lambdaapi.Function, ps core.PoolStore) *lambdaapi.Handler {
		h, err := lambdaapi.New(lambdaapi.Config{Function: fn, Scheduler: s, PoolStore: ps})
		require.NoError(t, err)
		return h
	}
	event := func(typ, resourceType string, props map[string]any) []byte {
		props["ServiceToken"] = "arn:aws:lambda:us-east-1:1:function:expire"
		b, err := json.Marshal(map[string]any{"RequestType": typ, "ResponseURL": srv.URL + "/r?X-Amz-Signature=s",
			"StackId": "stack", "RequestId": "req", "ResourceType": resourceType, "LogicalResourceId": "Pools", "ResourceProperties": props})
		require.NoError(t, err)
		return b
	}
	expire := handler(lambdaapi.Expire, store)
	ctx := context.Background()

	_, err = expire.Invoke(ctx, event("Create", lambdaapi.PoolsResourceType, map[string]any{lambdaapi.PropPools: `[{"name":"gpu","capacity":2,"maxParked":5,"runTimeout":"1m"}]`}))
	require.NoError(t, err)
	res := <-answers
	require.Equal(t, cfn.StatusSuccess, res.Status, res.Reason)
	require.Equal(t, "Pools", res.PhysicalResourceID)
	require.Equal(t, "req", res.RequestID)
	require.Equal(t, map[string]any{"Created": 1.0, "Updated": 0.0, "Unchanged": 0.0}, res.Data)
	p, err := store.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, core.PoolConfig{Name: "gpu", Capacity: 2, MaxParked: 5, DefaultMaxWait: 10 * time.Minute, RunTimeout: time.Minute}, p.PoolConfig)

	for name, c := range map[string]struct {
		h     *lambdaapi.Handler
		typ   string
		props map[string]any
	}{
		"another type":   {expire, "Custom::Other", map[string]any{lambdaapi.PropPools: `[]`}},
		"unparsed pools": {expire, lambdaapi.PoolsResourceType, map[string]any{lambdaapi.PropPools: `{`}},
		"invalid pool":   {expire, lambdaapi.PoolsResourceType, map[string]any{lambdaapi.PropPools: `[{"name":"gpu","capacity":0}]`}},
		"no pools":       {expire, lambdaapi.PoolsResourceType, map[string]any{}},
		"unknown prop":   {expire, lambdaapi.PoolsResourceType, map[string]any{lambdaapi.PropPools: `[]`, "Size": "1"}},
		"no pool store":  {handler(lambdaapi.Expire, nil), lambdaapi.PoolsResourceType, map[string]any{lambdaapi.PropPools: `[]`}},
	} {
		_, err := c.h.Invoke(ctx, event("Update", c.typ, c.props))
		require.NoError(t, err, name)
		res := <-answers
		require.Equal(t, cfn.StatusFailed, res.Status, name)
		require.NotEmpty(t, res.Reason, name)
	}
	p, err = store.Pool(ctx, "gpu")
	require.NoError(t, err)
	require.Equal(t, 2, p.Capacity, "a failed request changed nothing")

	// Delete leaves the pools alone, and needs no pool store.
	_, err = handler(lambdaapi.Expire, nil).Invoke(ctx, event("Delete", lambdaapi.PoolsResourceType, map[string]any{lambdaapi.PropPools: `[]`}))
	require.NoError(t, err)
	require.Equal(t, cfn.StatusSuccess, (<-answers).Status)
	_, err = store.Pool(ctx, "gpu")
	require.NoError(t, err)

	// Only expire serves CloudFormation.
	_, err = handler(lambdaapi.Submit, store).Invoke(ctx, event("Create", lambdaapi.PoolsResourceType, map[string]any{lambdaapi.PropPools: `[]`}))
	require.ErrorIs(t, err, lambdaapi.ErrUnsupportedEvent)
}
