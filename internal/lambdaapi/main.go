package lambdaapi

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Main is the main of the function fn: it reads the environment once
// (LoadEnv), builds the SDK clients and the store once, core, and fn's
// handler, and hands it to lambda.Start. A bad environment or an unreachable
// store is logged and exits the process, so that the cold start fails
// loudly. The mailbox function does not put the configured pools: it only
// reads, and putting a pool wakes its parked work.
func Main(fn Function) {
	ctx := context.Background()
	log := lambdacontext.NewLogger()
	env, err := LoadEnv(os.Getenv)
	if err != nil {
		log.Error("bad environment", "function", fn, "err", err)
		os.Exit(1)
	}
	store, err := awsconfig.Load(ctx, env.Store, awsstore.Options{})
	if err != nil {
		log.Error("store", "function", fn, "err", err)
		os.Exit(1)
	}
	mets := NewMetrics(os.Stdout, env.Namespace, nil)
	sched, err := core.New(core.Config{Backend: store, Logger: log, Observer: mets.Observer()})
	if err == nil && fn != Mailbox {
		err = PutPools(ctx, sched, env.Pools)
	}
	var h *Handler
	if err == nil {
		h, err = New(env.Config(fn, sched, log, mets))
	}
	if err != nil {
		log.Error("start", "function", fn, "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
