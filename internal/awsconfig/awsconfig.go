package awsconfig

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
)

// Settings locate the backend's AWS resources.
type Settings struct {
	// Region is the AWS region. Required.
	Region string
	// Endpoint is the base URL of DynamoDB and SQS; empty: AWS_ENDPOINT_URL
	// if set, else the real AWS endpoints of Region.
	Endpoint string
	// Table is the DynamoDB table. Required.
	Table string
	// QueuePrefix starts every parking queue's name; empty: awsstore's
	// default, parkinglot-.
	QueuePrefix string
	// CreateResources creates the table and queues if missing.
	CreateResources bool
}

// FromStore returns the settings of a validated store block of type aws.
func FromStore(s config.Store) Settings {
	return Settings{
		Region: s.Region, Endpoint: s.Endpoint, Table: s.Table,
		QueuePrefix: s.QueuePrefix, CreateResources: s.CreateResources,
	}
}

// Environment variables that FromEnv reads.
const (
	EnvTable           = "PARKINGLOT_TABLE"
	EnvQueuePrefix     = "PARKINGLOT_QUEUE_PREFIX"
	EnvCreateResources = "PARKINGLOT_CREATE_RESOURCES" // "true" to create
	EnvRegion          = "AWS_REGION"                  // set by the Lambda runtime
	EnvEndpoint        = "AWS_ENDPOINT_URL"            // optional, for emulators
)

// FromEnv returns the settings named by the environment (getenv is
// os.Getenv in a main), or an error naming the missing variable.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		Region: getenv(EnvRegion), Endpoint: getenv(EnvEndpoint), Table: getenv(EnvTable),
		QueuePrefix: getenv(EnvQueuePrefix),
	}
	switch v := getenv(EnvCreateResources); v {
	case "", "false":
	case "true":
		s.CreateResources = true
	default:
		return Settings{}, fmt.Errorf("awsconfig: %s must be true or false, got %q", EnvCreateResources, v)
	}
	if s.Region == "" {
		return Settings{}, fmt.Errorf("awsconfig: %s is not set", EnvRegion)
	}
	if s.Table == "" {
		return Settings{}, fmt.Errorf("awsconfig: %s is not set", EnvTable)
	}
	return s, nil
}

// SDKConfig loads the SDK's configuration for s: credentials from the
// default chain, s.Region, s.Endpoint when set, and awsstore.NewRetryer.
// Each fn then edits the result (a request counter's Register, say).
func SDKConfig(ctx context.Context, s Settings, fns ...func(*aws.Config)) (aws.Config, error) {
	if s.Region == "" {
		return aws.Config{}, errors.New("awsconfig: Settings.Region is required")
	}
	cfg, err := sdkconfig.LoadDefaultConfig(ctx,
		sdkconfig.WithRegion(s.Region),
		sdkconfig.WithRetryer(func() aws.Retryer { return awsstore.NewRetryer(0) }),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("awsconfig: load SDK config: %w", err)
	}
	if s.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(s.Endpoint)
	}
	for _, fn := range fns {
		fn(&cfg)
	}
	return cfg, nil
}

// Open builds the DynamoDB and SQS clients once from cfg and returns the
// store over them: base's other options (Clock, Visibility, ...) are kept,
// its clients, Table, QueuePrefix and CreateQueues come from s and cfg.
// With s.CreateResources it creates the table and the queues of the pools
// the table holds, and PutPool creates the queue of a new pool.
func Open(ctx context.Context, s Settings, cfg aws.Config, base awsstore.Options) (*awsstore.Store, error) {
	base.DynamoDB = dynamodb.NewFromConfig(cfg)
	base.SQS = sqs.NewFromConfig(cfg)
	base.Table = s.Table
	base.QueuePrefix = s.QueuePrefix
	base.CreateQueues = s.CreateResources
	st, err := awsstore.New(ctx, base)
	if err != nil {
		return nil, err
	}
	if s.CreateResources {
		if err := st.CreateResources(ctx); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// Load is SDKConfig and Open in one call, for mains.
func Load(ctx context.Context, s Settings, base awsstore.Options) (*awsstore.Store, error) {
	cfg, err := SDKConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	return Open(ctx, s, cfg, base)
}

// PushClients builds the clients of push pools' lambda and sqs targets from
// cfg (SDKConfig's).
func PushClients(cfg aws.Config) push.AWSClients {
	return push.AWSClients{Lambda: lambda.NewFromConfig(cfg), SQS: sqs.NewFromConfig(cfg)}
}
