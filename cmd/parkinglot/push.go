package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
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
	if needsAWS(targets) {
		sdk, err := pushSDKConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		opts.AWS = awsconfig.PushClients(sdk)
	}
	return push.New(opts)
}

// pushSDKConfig is the AWS configuration of push targets and the results
// queue: an aws store's settings, or else the environment's (AWS_REGION,
// AWS_ENDPOINT_URL, the credential chain; a lambda target's endpoint may be
// set apart with AWS_ENDPOINT_URL_LAMBDA, which the SDK reads itself).
func pushSDKConfig(ctx context.Context, cfg config.Config) (aws.Config, error) {
	s := awsconfig.Settings{Region: os.Getenv(awsconfig.EnvRegion), Endpoint: os.Getenv(awsconfig.EnvEndpoint)}
	if cfg.Store.Type == config.StoreAWS {
		s = awsconfig.FromStore(cfg.Store)
	}
	return awsconfig.SDKConfig(ctx, s)
}

// resultsClient is the SQS client that reads cfg.ResultsQueue.
func resultsClient(ctx context.Context, cfg config.Config) (*sqs.Client, error) {
	sdk, err := pushSDKConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return sqs.NewFromConfig(sdk), nil
}
