package awsstore_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// faultProxy forwards to moto but answers every third request itself, before
// it reaches moto: alternately a DynamoDB-style throttling error and a 500.
// Failing before the service acts is what moto can emulate honestly: a
// failure after DynamoDB applied a transaction is absorbed on AWS by the
// ClientRequestToken that the SDK reuses across retries, which moto ignores.
type faultProxy struct {
	n, failed atomic.Int64
	proxy     *httputil.ReverseProxy
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.n.Add(1)
	if n%3 != 1 {
		f.proxy.ServeHTTP(w, r)
		return
	}
	f.failed.Add(1)
	if n%2 == 1 && strings.HasPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_") {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}`))
		return
	}
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(`{"__type":"InternalFailure","message":"injected"}`))
}

// TestRetriesThrottlingAnd5xx runs task lifecycles while a third of all AWS
// requests fail with throttling or 500: the SDK's retryer (NewRetryer)
// absorbs them, and nothing is doubled or lost.
func TestRetriesThrottlingAnd5xx(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	target, err := url.Parse(moto.Endpoint)
	require.NoError(t, err)
	fp := &faultProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	srv := httptest.NewServer(fp)
	t.Cleanup(srv.Close)

	counter := &awsstore.RequestCounter{}
	cfg := moto.Config()
	cfg.BaseEndpoint = aws.String(srv.URL)
	cfg.Retryer = func() aws.Retryer { return awsstore.NewRetryer(10) }
	counter.Register(&cfg)
	opts := b.opts
	opts.DynamoDB, opts.SQS = dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	store, err := awsstore.New(ctx, opts)
	require.NoError(t, err)

	clock := core.NewStubClock(t0)
	s, err := core.New(core.Config{Backend: store, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, s.PutPool(ctx, poolCfg("p", 1, 10)))

	const n = 4
	var ids []string
	for range n {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p"})
		require.NoError(t, err)
		ids = append(ids, res.Task.ID)
	}
	for range n {
		var running []core.Task
		for _, id := range ids {
			tk, err := s.Task(ctx, "acme", id)
			require.NoError(t, err)
			if tk.State == core.StateRunning {
				running = append(running, tk)
			}
		}
		require.Len(t, running, 1, "capacity 1, and a wake-up after every completion")
		_, err := s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: running[0].ID, Lease: running[0].Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
		clock.Advance(time.Second)
	}

	// Checked through the clean clients, not the faulty ones.
	for _, id := range ids {
		tk, err := b.store.Task(ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StateSucceeded, tk.State)
	}
	msgs, err := b.store.Messages(ctx, "acme", "acme", 0, 100)
	require.NoError(t, err)
	require.Len(t, msgs, 2*n, "one started and one outcome message per task")
	p, err := b.store.Pool(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, 0, p.Running)
	require.Equal(t, 0, p.Parked)

	total := counter.Snapshot().Total()
	t.Logf("%d calls, %d attempts, %d injected failures", total.Calls, total.Attempts, fp.failed.Load())
	require.Zero(t, total.Errors, "every injected failure was retried")
	require.Positive(t, fp.failed.Load())
	require.Equal(t, int64(total.Attempts), fp.n.Load(), "every attempt went through the proxy")
	require.Equal(t, total.Calls+int(fp.failed.Load()), total.Attempts)
}
