package stack

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
)

// TTLAttribute is the table's time-to-live attribute: the one
// awsstore.CreateResources enables (a test compares them on moto).
const TTLAttribute = "expires"

// Expire's sweeps within one scheduled invocation: every sweepEvery for
// sweepFor, so that deadlines and leases are acted on within seconds
// although EventBridge schedules have one-minute precision.
const (
	sweepEvery = "10s"
	sweepFor   = "50s"
)

// Parking queues and dead-letter queues.
const (
	// parkVisibility is the parking queues' default visibility; awsstore
	// sets its own (Options.Visibility, 30s by default) on every receive.
	parkVisibility = 30
	// parkMaxReceives is the receive count after which a parking message
	// goes to its pool's DLQ: SQS's maximum. A dispatcher hands back the
	// messages it does not start (another tenant's turn, a slot taken by a
	// racing start), each such hand-back counts as a receive, and a parked
	// task may wait up to 14 days.
	parkMaxReceives = 1000
	// submitMaxReceives is the number of attempts of an event-driven
	// submission before its message goes to the submit DLQ.
	submitMaxReceives = 5
	retentionDays     = 14
)

// Function timeouts, in seconds. The mailbox long-polls up to 20s; API
// Gateway's integration timeout is 30s. SQS's visibility on the submit
// queue is six times submit's timeout, as Lambda advises.
var timeouts = map[lambdaapi.Function]float64{
	lambdaapi.Submit:   15,
	lambdaapi.Dispatch: 15,
	lambdaapi.Mailbox:  25,
	lambdaapi.Expire:   60,
}

// Stack is the built stack, with the constructs the tests and the
// monitoring look at.
type Stack struct {
	Stack       awscdk.Stack
	Props       Props
	Table       awsdynamodb.Table
	PoolQueues  map[string]awssqs.Queue // by pool name
	PoolDLQs    map[string]awssqs.Queue
	SubmitQueue awssqs.Queue
	SubmitDLQ   awssqs.Queue
	Functions   map[lambdaapi.Function]awslambda.Function
	API         awsapigatewayv2.HttpApi
	Stage       awsapigatewayv2.CfnStage
	AccessLogs  awslogs.LogGroup
}

// New adds the Parkinglot stack to scope. props is completed with its
// defaults and validated first.
func New(scope constructs.Construct, props Props) (*Stack, error) {
	props = props.WithDefaults()
	if err := props.Validate(); err != nil {
		return nil, err
	}
	s := &Stack{
		Stack: awscdk.NewStack(scope, jsii.String(props.StackName), &awscdk.StackProps{
			Description: jsii.String("Parkinglot: parking-lot scheduler on Lambda, DynamoDB and SQS"),
		}),
		Props:      props,
		PoolQueues: map[string]awssqs.Queue{},
		PoolDLQs:   map[string]awssqs.Queue{},
		Functions:  map[lambdaapi.Function]awslambda.Function{},
	}
	s.table()
	s.queues()
	s.functions()
	s.grants()
	s.api()
	s.schedule()
	s.eventSubmissions()
	s.monitoring()
	s.outputs()
	s.suppress()
	return s, nil
}

// table builds the table from awsstore.TableSchema: keys, the sparse
// KEYS_ONLY indexes, on-demand billing; plus TTL and point-in-time recovery.
func (s *Stack) table() {
	schema := awsstore.TableSchema("")
	types_ := map[string]awsdynamodb.AttributeType{}
	for _, d := range schema.AttributeDefinitions {
		t := awsdynamodb.AttributeType_STRING
		switch d.AttributeType {
		case "S":
		case "N":
			t = awsdynamodb.AttributeType_NUMBER
		case "B":
			t = awsdynamodb.AttributeType_BINARY
		default:
			panic(fmt.Sprintf("stack: attribute %s has unknown type %s", *d.AttributeName, d.AttributeType))
		}
		types_[*d.AttributeName] = t
	}
	keys := func(ks []types.KeySchemaElement) (pk, sk *awsdynamodb.Attribute) {
		for _, k := range ks {
			a := &awsdynamodb.Attribute{Name: k.AttributeName, Type: types_[*k.AttributeName]}
			if k.KeyType == types.KeyTypeHash {
				pk = a
			} else {
				sk = a
			}
		}
		return pk, sk
	}
	billing := awsdynamodb.BillingMode_PAY_PER_REQUEST
	if schema.BillingMode != types.BillingModePayPerRequest {
		panic("stack: awsstore.TableSchema asks for a billing mode this stack does not deploy: " + string(schema.BillingMode))
	}
	pk, sk := keys(schema.KeySchema)
	s.Table = awsdynamodb.NewTable(s.Stack, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey: pk,
		SortKey:      sk,
		BillingMode:  billing,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		TimeToLiveAttribute: jsii.String(TTLAttribute),
		RemovalPolicy:       awscdk.RemovalPolicy_RETAIN,
	})
	for _, g := range schema.GlobalSecondaryIndexes {
		if g.Projection == nil || g.Projection.ProjectionType != types.ProjectionTypeKeysOnly {
			panic("stack: awsstore.TableSchema has a non-KEYS_ONLY index this stack does not deploy: " + *g.IndexName)
		}
		gpk, gsk := keys(g.KeySchema)
		s.Table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      g.IndexName,
			PartitionKey:   gpk,
			SortKey:        gsk,
			ProjectionType: awsdynamodb.ProjectionType_KEYS_ONLY,
		})
	}
}

// DLQName is the name of pool's dead-letter queue: its parking queue's
// name (awsstore.QueueName) under the prefix queuePrefix + "dlq-". FIFO
// queues are named explicitly (moto's CloudFormation does not generate
// ".fifo" names); Props.Validate refuses pools whose queue names collide.
func DLQName(queuePrefix, pool string) string {
	return awsstore.QueueName(queuePrefix+"dlq-", pool)
}

// queues builds one FIFO parking queue per pool, named as awsstore names
// it, each with a FIFO DLQ, and the submit queue with its DLQ.
func (s *Stack) queues() {
	days := awscdk.Duration_Days(jsii.Number(retentionDays))
	for _, p := range s.Props.Pools {
		dlq := awssqs.NewQueue(s.Stack, jsii.String("PoolDLQ-"+p.Name), &awssqs.QueueProps{
			QueueName:       jsii.String(DLQName(s.Props.QueuePrefix, p.Name)),
			Fifo:            jsii.Bool(true),
			RetentionPeriod: days,
			Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
			EnforceSSL:      jsii.Bool(true),
		})
		q := awssqs.NewQueue(s.Stack, jsii.String("Pool-"+p.Name), &awssqs.QueueProps{
			QueueName:           jsii.String(awsstore.QueueName(s.Props.QueuePrefix, p.Name)),
			Fifo:                jsii.Bool(true),
			DeduplicationScope:  awssqs.DeduplicationScope_MESSAGE_GROUP,
			FifoThroughputLimit: awssqs.FifoThroughputLimit_PER_MESSAGE_GROUP_ID,
			VisibilityTimeout:   awscdk.Duration_Seconds(jsii.Number(parkVisibility)),
			RetentionPeriod:     days,
			DeadLetterQueue:     &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(parkMaxReceives)},
			Encryption:          awssqs.QueueEncryption_SQS_MANAGED,
			EnforceSSL:          jsii.Bool(true),
		})
		s.PoolQueues[p.Name], s.PoolDLQs[p.Name] = q, dlq
	}
	s.SubmitDLQ = awssqs.NewQueue(s.Stack, jsii.String("SubmitDLQ"), &awssqs.QueueProps{
		RetentionPeriod: days,
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
	s.SubmitQueue = awssqs.NewQueue(s.Stack, jsii.String("SubmitQueue"), &awssqs.QueueProps{
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(6 * timeouts[lambdaapi.Submit])),
		RetentionPeriod:   days,
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: s.SubmitDLQ, MaxReceiveCount: jsii.Number(submitMaxReceives)},
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:        jsii.Bool(true),
	})
}

// functions builds the four functions from their zips: provided.al2023 on
// arm64, JSON logs into a log group of their own.
func (s *Stack) functions() {
	for _, f := range lambdaapi.Functions {
		name := string(f)
		logs := awslogs.NewLogGroup(s.Stack, jsii.String("Logs-"+name), &awslogs.LogGroupProps{
			Retention:     awslogs.RetentionDays_ONE_MONTH,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		s.Functions[f] = awslambda.NewFunction(s.Stack, jsii.String("Fn-"+name), &awslambda.FunctionProps{
			Description:   jsii.String("Parkinglot " + name),
			Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
			Architecture:  awslambda.Architecture_ARM_64(),
			Handler:       jsii.String("bootstrap"),
			Code:          awslambda.Code_FromAsset(jsii.String(s.Props.zip(f)), nil),
			MemorySize:    jsii.Number(256),
			Timeout:       awscdk.Duration_Seconds(jsii.Number(timeouts[f])),
			LogGroup:      logs,
			LoggingFormat: awslambda.LoggingFormat_JSON,
			Environment:   s.env(f),
		})
	}
	s.Functions[lambdaapi.Submit].AddEventSource(awslambdaeventsources.NewSqsEventSource(s.SubmitQueue,
		&awslambdaeventsources.SqsEventSourceProps{
			BatchSize:               jsii.Number(10),
			ReportBatchItemFailures: jsii.Bool(true),
		}))
}

// env is function f's environment (lambdaapi.LoadEnv reads it): the
// table, the queue prefix, the tenant claim, the pools and expire's sweep
// cadence. Submit, dispatch and expire put the pools at cold start
// (counters kept; expire runs within a minute of a deploy). The mailbox
// function does not: putting a pool wakes it, which dispatches, and the
// mailbox function may neither start tasks nor read the parking queues.
func (s *Stack) env(f lambdaapi.Function) *map[string]*string {
	env := map[string]*string{
		awsconfig.EnvTable:       s.Table.TableName(),
		awsconfig.EnvQueuePrefix: jsii.String(s.Props.QueuePrefix),
		lambdaapi.EnvTenantClaim: jsii.String(s.Props.TenantClaim),
		lambdaapi.EnvNamespace:   jsii.String(MetricsNamespace),
	}
	if f != lambdaapi.Mailbox {
		env[lambdaapi.EnvPools] = jsii.String(PoolsJSON(s.Props.Pools))
	}
	if f == lambdaapi.Submit && len(s.Props.EventSources) > 0 {
		var kv []string
		for _, src := range sortedKeys(s.Props.EventSources) {
			kv = append(kv, src+"="+s.Props.EventSources[src])
		}
		env[lambdaapi.EnvEventSources] = jsii.String(strings.Join(kv, ","))
	}
	if f == lambdaapi.Expire {
		env[lambdaapi.EnvSweepEvery] = jsii.String(sweepEvery)
		env[lambdaapi.EnvSweepFor] = jsii.String(sweepFor)
	}
	return &env
}

// MetricsNamespace is the CloudWatch namespace of the functions' EMF
// metrics, which the alarms and the dashboard read.
const MetricsNamespace = lambdaapi.DefaultNamespace

// PoolsJSON is pools in the form of lambdaapi.EnvPools.
func PoolsJSON(pools []config.Pool) string {
	type envPool struct {
		Name           string `json:"name"`
		Capacity       int    `json:"capacity"`
		MaxParked      int    `json:"maxParked"`
		DefaultMaxWait string `json:"defaultMaxWait"`
		RunTimeout     string `json:"runTimeout"`
		Executor       string `json:"executor,omitempty"`
	}
	out := make([]envPool, len(pools))
	for i, p := range pools {
		out[i] = envPool{Name: p.Name, Capacity: p.Capacity, MaxParked: p.MaxParked,
			DefaultMaxWait: p.DefaultMaxWait.String(), RunTimeout: p.RunTimeout.String(), Executor: p.Executor}
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err) // plain values: cannot fail
	}
	return string(b)
}

// grants gives each function what its code calls, and no more:
//
//	function  table                                   parking queues
//	submit    read/write (admission, mailbox, audit)  send (park), consume (a park's wake-up)
//	dispatch  read/write (start, complete, release)   consume (a release's dispatch)
//	expire    read/write (sweep, purge)               send (outbox re-send), consume (safety-net dispatch)
//	mailbox   read, UpdateItem (ack)                  none
//
// Only submit (Submit parks) and expire (Sweep re-sends unsent parked
// tasks) send to the parking queues. The submit queue's consumption by
// submit is granted by its event source.
func (s *Stack) grants() {
	for _, f := range []lambdaapi.Function{lambdaapi.Submit, lambdaapi.Dispatch, lambdaapi.Expire} {
		fn := s.Functions[f]
		s.Table.GrantReadWriteData(fn)
		for _, p := range s.Props.Pools {
			if f != lambdaapi.Dispatch {
				s.PoolQueues[p.Name].GrantSendMessages(fn)
			}
			s.PoolQueues[p.Name].GrantConsumeMessages(fn)
		}
	}
	mb := s.Functions[lambdaapi.Mailbox]
	s.Table.GrantReadData(mb)
	s.Table.Grant(mb, jsii.String("dynamodb:UpdateItem"))
}

// accessLogFormat is the API's access log line: JSON, with the request id
// that the functions' logs carry too.
const accessLogFormat = `{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",` +
	`"requestTime":"$context.requestTime","routeKey":"$context.routeKey","status":"$context.status",` +
	`"protocol":"$context.protocol","responseLength":"$context.responseLength",` +
	`"latency":"$context.responseLatency","integrationLatency":"$context.integrationLatency",` +
	`"integrationError":"$context.integrationErrorMessage","authorizerError":"$context.authorizer.error"}`

// api builds the HTTP API: a JWT authorizer on every route, one route per
// lambdaapi.Routes entry to its function (payload v2), the $default route
// to lambdaapi.DefaultRoute, and the $default stage with access logs and
// throttling.
func (s *Stack) api() {
	auth := awsapigatewayv2authorizers.NewHttpJwtAuthorizer(jsii.String("Jwt"), jsii.String(s.Props.JWTIssuer),
		&awsapigatewayv2authorizers.HttpJwtAuthorizerProps{
			JwtAudience:    jsii.Strings(s.Props.JWTAudience...),
			IdentitySource: jsii.Strings("$request.header.Authorization"),
		})
	integrations := map[lambdaapi.Function]awsapigatewayv2integrations.HttpLambdaIntegration{}
	for _, f := range lambdaapi.Functions {
		integrations[f] = awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("Integration-"+string(f)),
			s.Functions[f], &awsapigatewayv2integrations.HttpLambdaIntegrationProps{
				PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_2_0(),
			})
	}
	s.API = awsapigatewayv2.NewHttpApi(s.Stack, jsii.String("Api"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String(s.Props.StackName),
		Description:        jsii.String("Parkinglot HTTP API v1"),
		DefaultAuthorizer:  auth,
		DefaultIntegration: integrations[lambdaapi.DefaultRoute],
		CreateDefaultStage: jsii.Bool(false),
	})
	for _, r := range lambdaapi.Routes() {
		s.API.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(r.Path),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod(r.Method)},
			Integration: integrations[r.Function],
		})
	}
	s.AccessLogs = awslogs.NewLogGroup(s.Stack, jsii.String("ApiAccessLogs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_THREE_MONTHS,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	s.Stage = awsapigatewayv2.NewCfnStage(s.Stack, jsii.String("Stage"), &awsapigatewayv2.CfnStageProps{
		ApiId:      s.API.ApiId(),
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		AccessLogSettings: &awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
			DestinationArn: s.AccessLogs.LogGroupArn(),
			Format:         jsii.String(accessLogFormat),
		},
		DefaultRouteSettings: &awsapigatewayv2.CfnStage_RouteSettingsProperty{
			DetailedMetricsEnabled: jsii.Bool(true),
			ThrottlingBurstLimit:   jsii.Number(1000),
			ThrottlingRateLimit:    jsii.Number(500),
		},
	})
}

// schedule runs expire every minute (expiry, lease reclaim, outbox
// re-sends, safety-net dispatch). A tick older than a minute is dropped:
// the next one does the same work.
func (s *Stack) schedule() {
	awsevents.NewRule(s.Stack, jsii.String("ExpireSchedule"), &awsevents.RuleProps{
		Description: jsii.String("Parkinglot sweep: expiry, lease reclaim, outbox re-sends"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(1))),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(s.Functions[lambdaapi.Expire],
			&awseventstargets.LambdaFunctionProps{
				RetryAttempts: jsii.Number(2),
				MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(1)),
			})},
	})
}

// eventSubmissions routes the events of Props.EventSources on the default
// bus to submit. Submit is invoked asynchronously: Lambda retries a failed
// invocation twice, then sends the event to the submit DLQ.
func (s *Stack) eventSubmissions() {
	if len(s.Props.EventSources) == 0 {
		return
	}
	submit := s.Functions[lambdaapi.Submit]
	submit.ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{
		RetryAttempts: jsii.Number(2),
		MaxEventAge:   awscdk.Duration_Hours(jsii.Number(6)),
		OnFailure:     awslambdadestinations.NewSqsDestination(s.SubmitDLQ),
	})
	awsevents.NewRule(s.Stack, jsii.String("SubmitEvents"), &awsevents.RuleProps{
		Description:  jsii.String("Parkinglot event-driven submissions"),
		EventPattern: &awsevents.EventPattern{Source: jsii.Strings(sortedKeys(s.Props.EventSources)...)},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(submit,
			&awseventstargets.LambdaFunctionProps{DeadLetterQueue: s.SubmitDLQ, RetryAttempts: jsii.Number(8)})},
	})
}

func (s *Stack) outputs() {
	out := func(id string, v *string, desc string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
	}
	out("ApiUrl", awscdk.Fn_Sub(jsii.String("https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"),
		&map[string]*string{"Api": s.API.ApiId()}), "HTTP API v1 base URL")
	out("TableName", s.Table.TableName(), "DynamoDB table")
	out("QueuePrefix", jsii.String(s.Props.QueuePrefix), "prefix of the pools' parking queues")
	out("SubmitQueueUrl", s.SubmitQueue.QueueUrl(), "SQS queue for event-driven submissions")
}
