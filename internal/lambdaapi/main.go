package lambdaapi

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Main is the main of the function fn: it reads the environment once
// (LoadEnv), builds the SDK clients and the store once, core, and fn's
// handler, and hands it to lambda.Start. A bad environment or an unreachable
// store is logged and exits the process, so that the cold start fails
// loudly. A cold start writes nothing: the pools are in the table, which
// core reads on every transition; expire writes them when CloudFormation
// sends it the stack's custom resource (Handler.CustomResource). Every
// function but mailbox pushes the starts of push pools (NewPusher) to their
// targets (EnvTargets).
func Main(fn Function) {
	ctx := context.Background()
	log := lambdacontext.NewLogger()
	env, err := LoadEnv(os.Getenv)
	if err != nil {
		log.Error("bad environment", "function", fn, "err", err)
		os.Exit(1)
	}
	sdk, err := awsconfig.SDKConfig(ctx, env.Store)
	var store *awsstore.Store
	if err == nil {
		store, err = awsconfig.Open(ctx, env.Store, sdk, awsstore.Options{})
	}
	if err != nil {
		log.Error("store", "function", fn, "err", err)
		os.Exit(1)
	}
	mets := NewMetrics(os.Stdout, env.Namespace, nil)
	var pusher *push.Pusher
	if fn != Mailbox {
		if len(env.SecretARNs) > 0 {
			err = env.ResolveSecrets(ctx, secretsmanager.NewFromConfig(sdk))
		}
		if err == nil {
			pusher, err = NewPusher(env.Targets, awsconfig.PushClients(sdk), log)
		}
	}
	var sched *core.Scheduler
	if err == nil {
		sched, err = core.New(core.Config{Backend: store, Logger: log, Observer: mets.Observer(), Pusher: corePusher(pusher)})
	}
	if err == nil && pusher != nil {
		pusher.Bind(sched)
	}
	var h *Handler
	if err == nil {
		cfg := env.Config(fn, sched, log, mets)
		cfg.Pusher = pusher
		if fn == Expire {
			cfg.PoolStore = store
		}
		h, err = New(cfg)
	}
	if err != nil {
		log.Error("start", "function", fn, "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}

// NewPusher returns the Pusher of a function's push pools (nil when targets
// is empty), which retries by the sweep: a function's process does not
// outlive its invocation. Bind it to the function's scheduler.
func NewPusher(targets map[string]push.Target, clients push.AWSClients, log *slog.Logger) (*push.Pusher, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	return push.New(push.Options{Targets: targets, AWS: clients, RetryBySweep: true, Logger: log})
}

// corePusher is p as core's Pusher: none when p is nil.
func corePusher(p *push.Pusher) core.Pusher {
	if p == nil {
		return nil
	}
	return p
}
