package awsstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// moto is the package's one moto server; every test uses its own table and
// queue names on it.
var moto *mototest.Server

func TestMain(m *testing.M) { os.Exit(mototest.RunMain(m, &moto, "awsstore tests")) }

type bundle struct {
	store   *awsstore.Store
	opts    awsstore.Options
	counter *awsstore.RequestCounter
	touches *itemTouches
	calls   *callLog
	ddb     *dynamodb.Client
	sqs     *sqs.Client
}

type setupOpts struct {
	visibility   time.Duration
	clock        core.Clock
	groupBuckets int
}

// setup returns a store over a fresh table and queue prefix on moto, with
// its resources created and a request counter on its clients.
func setup(t testing.TB, so ...setupOpts) *bundle {
	t.Helper()
	var o setupOpts
	if len(so) > 0 {
		o = so[0]
	}
	b := &bundle{counter: &awsstore.RequestCounter{}, touches: &itemTouches{}, calls: &callLog{}}
	cfg := moto.Config()
	cfg.Retryer = func() aws.Retryer { return awsstore.NewRetryer(0) }
	b.counter.Register(&cfg)
	b.touches.register(&cfg)
	b.calls.register(&cfg)
	b.ddb = dynamodb.NewFromConfig(cfg)
	b.sqs = sqs.NewFromConfig(cfg)
	name := uniq()
	b.opts = awsstore.Options{
		DynamoDB: b.ddb, SQS: b.sqs,
		Table: "parkinglot-" + name, QueuePrefix: "pl" + name + "-",
		Visibility: o.visibility, Clock: o.clock, GroupBuckets: o.groupBuckets,
		CreateQueues: true, ReturnConsumedCapacity: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := awsstore.New(ctx, b.opts)
	require.NoError(t, err)
	require.NoError(t, s.CreateResources(ctx))
	b.store = s
	b.opts = s.Options()
	return b
}

func uniq() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
