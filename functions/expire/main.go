// Command expire is the expire Lambda function of Parkinglot's serverless
// deployment: the scheduled sweep: expiry, lease reclaim, outbox re-sends, safety-net dispatch. Its environment is described by
// lambdaapi.LoadEnv. Build it as bootstrap for provided.al2023:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./functions/expire
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

func main() {
	ctx := context.Background()
	log := lambdacontext.NewLogger()
	env, err := lambdaapi.LoadEnv(os.Getenv)
	if err != nil {
		log.Error("bad environment", "err", err)
		os.Exit(1)
	}
	store, err := awsconfig.Load(ctx, env.Store, awsstore.Options{})
	if err != nil {
		log.Error("store", "err", err)
		os.Exit(1)
	}
	mets := lambdaapi.NewMetrics(os.Stdout, env.Namespace, nil)
	sched, err := core.New(core.Config{Backend: store, Logger: log, Observer: mets.Observer()})
	if err == nil {
		err = lambdaapi.PutPools(ctx, sched, env.Pools)
	}
	var h *lambdaapi.Handler
	if err == nil {
		h, err = lambdaapi.New(env.Config(lambdaapi.Expire, sched, log, mets))
	}
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
