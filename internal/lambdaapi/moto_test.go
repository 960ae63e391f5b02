package lambdaapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi/httpapitest"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestContractOnMoto runs the HTTP API v1 contract suite, unchanged, against
// the Lambda handlers over DynamoDB + SQS on moto, through the gateway. Each
// function has its own store over one fresh table and queue prefix, as four
// function instances would.
func TestContractOnMoto(t *testing.T) {
	t.Parallel()
	moto := mototest.Start(t)
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := hex.EncodeToString(r[:])
	cfg := moto.Config()
	cfg.Retryer = func() aws.Retryer { return awsstore.NewRetryer(0) }
	opts := awsstore.Options{
		DynamoDB: dynamodb.NewFromConfig(cfg), SQS: sqs.NewFromConfig(cfg),
		Table: "parkinglot-" + name, QueuePrefix: "pl" + name + "-", CreateQueues: true,
	}
	newStore := func() *awsstore.Store {
		s, err := awsstore.New(context.Background(), opts)
		require.NoError(t, err)
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, newStore().CreateResources(ctx))

	httpapitest.Run(t, func(t *testing.T, pools []core.PoolConfig) httpapitest.Target {
		return gatewayTargetOf(t, newStore, pools)
	})
}
