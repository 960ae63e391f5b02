package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/push"
)

// newPusher returns the Pusher of cfg's push pools, or nil when there are
// none. Lambda and sqs targets take the AWS settings of an aws store, or
// else the environment's (AWS_REGION, AWS_ENDPOINT_URL, the credential
// chain).
func newPusher(ctx context.Context, cfg config.Config, log *slog.Logger, onAttempt func(string, bool, time.Duration)) (*push.Pusher, error) {
	targets := config.Targets(cfg.Pools, os.Getenv)
	if len(targets) == 0 {
		return nil, nil
	}
	opts := push.Options{Targets: targets, Logger: log, OnAttempt: onAttempt}
	for _, t := range targets {
		if t.Type == push.TypeHTTP {
			continue
		}
		s := awsconfig.Settings{Region: os.Getenv(awsconfig.EnvRegion), Endpoint: os.Getenv(awsconfig.EnvEndpoint)}
		if cfg.Store.Type == config.StoreAWS {
			s = awsconfig.FromStore(cfg.Store)
		}
		sdk, err := awsconfig.SDKConfig(ctx, s)
		if err != nil {
			return nil, err
		}
		opts.AWS = awsconfig.PushClients(sdk)
		break
	}
	return push.New(opts)
}
