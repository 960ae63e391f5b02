package parkinglot

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
)

// TTLAttribute is the table's time-to-live attribute: the one
// awsstore.CreateResources enables.
const TTLAttribute = "expires"

// Expire's sweeps within one scheduled invocation: every sweepEvery for
// sweepFor, so that deadlines and leases are acted on within seconds
// although EventBridge schedules have one-minute precision.
const (
	sweepEvery = 10 * time.Second
	sweepFor   = 50 * time.Second
)

// Parking queues and dead-letter queues.
const (
	// parkVisibility is the parking queues' default visibility; awsstore
	// sets its own (Options.Visibility, 30s by default) on every receive.
	parkVisibility = 30
	// ParkMaxReceives is the receive count after which a parking message
	// goes to its pool's DLQ: SQS's maximum. A dispatcher hands back the
	// messages it does not start (another tenant's turn, a slot taken by a
	// racing start), each such hand-back counts as a receive, and a parked
	// task may wait up to 14 days.
	ParkMaxReceives = 1000
	// SubmitMaxReceives is the number of attempts of an event-driven
	// submission before its message goes to the submit DLQ.
	SubmitMaxReceives = 5
	// ResultsMaxReceives is the number of attempts at a push result (a
	// lambda target's destination record, an sqs target's worker's
	// outcome) before its message goes to the results DLQ.
	ResultsMaxReceives = 5
	retentionDays      = 14
)

// MetricsNamespace is the CloudWatch namespace of the functions' EMF
// metrics, which the alarms and the dashboard read.
const MetricsNamespace = lambdaapi.DefaultNamespace

// Parkinglot is the construct: its resources, for the app to wire further.
type Parkinglot struct {
	constructs.Construct
	props     Props
	preflight []awsapigatewayv2.HttpRoute // the CORS preflight route

	// Table is the DynamoDB table (retained when the stack is deleted).
	Table awsdynamodb.Table
	// PoolQueues are the parking queues by pool name, PoolDLQs their
	// dead-letter queues.
	PoolQueues map[string]awssqs.Queue
	PoolDLQs   map[string]awssqs.Queue
	// PoolStacks are the nested stacks that hold the resources of the
	// pools past Props.PoolsInStack, PoolsPerNestedStack each, in order;
	// none when every pool is in the construct's stack.
	PoolStacks []awscdk.NestedStack
	poolScope  map[string]constructs.Construct // where each pool's resources are
	// SubmitQueue takes event-driven submissions (GrantSubmit); SubmitDLQ
	// holds those that failed.
	SubmitQueue awssqs.Queue
	SubmitDLQ   awssqs.Queue
	// ResultsQueue, a standard queue, takes the outcomes of pushed tasks:
	// the destination records of lambda targets and the outcomes that
	// workers of sqs targets send (GrantWorker). Dispatch consumes it.
	// ResultsDLQ holds the results that failed. Both are nil without a
	// push pool.
	ResultsQueue awssqs.Queue
	ResultsDLQ   awssqs.Queue
	// Functions are the four functions by name.
	Functions map[Function]awslambda.Function
	// API is the HTTP API, Stage its $default stage, AccessLogs the
	// stage's access log group.
	API        awsapigatewayv2.HttpApi
	Stage      awsapigatewayv2.CfnStage
	AccessLogs awslogs.LogGroup
	// Domain is the API's custom domain; nil without Props.Domain.
	Domain awsapigatewayv2.DomainName
	// AlarmTopic is the SNS topic every alarm notifies.
	AlarmTopic awssns.Topic
	// Alarms are the construct's alarms by id (e.g. "Errors-submit").
	Alarms map[string]awscloudwatch.Alarm
	// PoolsResource is the custom resource that applies the pools to the
	// table at deploy time, served by expire.
	PoolsResource awscdk.CustomResource
}

// New adds Parkinglot to scope under id. props is completed with its
// defaults (Props.WithDefaults) and validated (Props.Validate); an invalid
// props panics with the error, as CDK constructs do.
func New(scope constructs.Construct, id string, props *Props) *Parkinglot {
	p, err := build(scope, id, props)
	if err != nil {
		panic(err)
	}
	return p
}

// build is New returning the validation error.
func build(scope constructs.Construct, id string, props *Props) (*Parkinglot, error) {
	if props == nil {
		props = &Props{}
	}
	pr := props.WithDefaults()
	if err := pr.Validate(); err != nil {
		return nil, err
	}
	s := &Parkinglot{
		Construct:  constructs.NewConstruct(scope, jsii.String(id)),
		props:      pr,
		PoolQueues: map[string]awssqs.Queue{},
		PoolDLQs:   map[string]awssqs.Queue{},
		poolScope:  map[string]constructs.Construct{},
		Functions:  map[Function]awslambda.Function{},
		Alarms:     map[string]awscloudwatch.Alarm{},
	}
	s.table()
	s.placePools()
	s.queues()
	s.functions()
	s.grants()
	s.pools()
	s.pushTargets()
	s.api()
	s.schedule()
	s.eventSubmissions()
	s.monitoring()
	s.suppress()
	return s, nil
}

// NewChecked is New returning an invalid props' error instead of
// panicking.
func NewChecked(scope constructs.Construct, id string, props *Props) (*Parkinglot, error) {
	return build(scope, id, props)
}

// Props returns the construct's props, completed with their defaults.
func (s *Parkinglot) Props() Props { return s.props }

// Function returns function f.
func (s *Parkinglot) Function(f Function) awslambda.Function { return s.Functions[f] }

// URL is the API's base URL, ending in "/": on the custom domain when
// there is one, else the API's execute-api endpoint.
func (s *Parkinglot) URL() *string {
	if s.Domain != nil {
		return jsii.String("https://" + s.props.Domain.Name + "/")
	}
	return awscdk.Fn_Sub(jsii.String("https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"),
		&map[string]*string{"Api": s.API.ApiId()})
}

// table builds the table from awsstore.TableSchema: keys, the sparse
// KEYS_ONLY indexes, on-demand billing; plus TTL, point-in-time recovery
// and, with Props.EncryptionKey, that key.
func (s *Parkinglot) table() {
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
			panic(fmt.Sprintf("parkinglot: attribute %s has unknown type %s", *d.AttributeName, d.AttributeType))
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
	if schema.BillingMode != types.BillingModePayPerRequest {
		panic("parkinglot: awsstore.TableSchema asks for a billing mode this construct does not deploy: " + string(schema.BillingMode))
	}
	pk, sk := keys(schema.KeySchema)
	tp := &awsdynamodb.TableProps{
		PartitionKey: pk,
		SortKey:      sk,
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		TimeToLiveAttribute: jsii.String(TTLAttribute),
		RemovalPolicy:       awscdk.RemovalPolicy_RETAIN,
	}
	if s.props.EncryptionKey != nil {
		tp.Encryption = awsdynamodb.TableEncryption_CUSTOMER_MANAGED
		tp.EncryptionKey = s.props.EncryptionKey
	}
	s.Table = awsdynamodb.NewTable(s.Construct, jsii.String("Table"), tp)
	for _, g := range schema.GlobalSecondaryIndexes {
		if g.Projection == nil || g.Projection.ProjectionType != types.ProjectionTypeKeysOnly {
			panic("parkinglot: awsstore.TableSchema has a non-KEYS_ONLY index this construct does not deploy: " + *g.IndexName)
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

// encryption sets qp's encryption: SQS-managed, or Props.EncryptionKey.
func (s *Parkinglot) encryption(qp *awssqs.QueueProps) *awssqs.QueueProps {
	qp.EnforceSSL = jsii.Bool(true)
	if s.props.EncryptionKey != nil {
		qp.Encryption = awssqs.QueueEncryption_KMS
		qp.EncryptionMasterKey = s.props.EncryptionKey
	} else {
		qp.Encryption = awssqs.QueueEncryption_SQS_MANAGED
	}
	return qp
}

// placePools decides where each pool's resources go: the first
// Props.PoolsInStack in the construct itself (the logical ids they had
// before nested stacks), the others in nested stacks PoolStack2,
// PoolStack3, ... of PoolsPerNestedStack pools each, under the construct.
func (s *Parkinglot) placePools() {
	for i, p := range s.props.Pools {
		if i < s.props.PoolsInStack {
			s.poolScope[p.Name] = s.Construct
			continue
		}
		n := (i - s.props.PoolsInStack) / PoolsPerNestedStack
		if n == len(s.PoolStacks) {
			last := min(s.props.PoolsInStack+(n+1)*PoolsPerNestedStack, len(s.props.Pools))
			s.PoolStacks = append(s.PoolStacks, awscdk.NewNestedStack(s.Construct, jsii.String(fmt.Sprintf("PoolStack%d", n+2)),
				&awscdk.NestedStackProps{Description: jsii.String(fmt.Sprintf(
					"Parkinglot pools %d-%d of %s: parking queues, DLQs, alarms", i+1, last, s.props.Name))}))
		}
		s.poolScope[p.Name] = s.PoolStacks[n]
	}
}

// queues builds one FIFO parking queue per pool, named as awsstore names
// it, each with a FIFO DLQ, in the pool's stack (placePools), and the
// submit queue with its DLQ.
func (s *Parkinglot) queues() {
	days := awscdk.Duration_Days(jsii.Number(retentionDays))
	for _, p := range s.props.Pools {
		scope := s.poolScope[p.Name]
		dlq := awssqs.NewQueue(scope, jsii.String("PoolDLQ-"+p.Name), s.encryption(&awssqs.QueueProps{
			QueueName:       jsii.String(DLQName(s.props.QueuePrefix, p.Name)),
			Fifo:            jsii.Bool(true),
			RetentionPeriod: days,
		}))
		q := awssqs.NewQueue(scope, jsii.String("Pool-"+p.Name), s.encryption(&awssqs.QueueProps{
			QueueName:           jsii.String(awsstore.QueueName(s.props.QueuePrefix, p.Name)),
			Fifo:                jsii.Bool(true),
			DeduplicationScope:  awssqs.DeduplicationScope_MESSAGE_GROUP,
			FifoThroughputLimit: awssqs.FifoThroughputLimit_PER_MESSAGE_GROUP_ID,
			VisibilityTimeout:   awscdk.Duration_Seconds(jsii.Number(parkVisibility)),
			RetentionPeriod:     days,
			DeadLetterQueue:     &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(ParkMaxReceives)},
		}))
		s.PoolQueues[p.Name], s.PoolDLQs[p.Name] = q, dlq
	}
	s.SubmitDLQ = awssqs.NewQueue(s.Construct, jsii.String("SubmitDLQ"), s.encryption(&awssqs.QueueProps{
		RetentionPeriod: days,
	}))
	s.SubmitQueue = awssqs.NewQueue(s.Construct, jsii.String("SubmitQueue"), s.encryption(&awssqs.QueueProps{
		// Six times submit's timeout, as Lambda advises.
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(6 * s.props.Functions[Submit].Timeout.Seconds())),
		RetentionPeriod:   days,
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: s.SubmitDLQ, MaxReceiveCount: jsii.Number(SubmitMaxReceives)},
	}))
	if !s.pushes() {
		return
	}
	// Standard queues: Lambda's asynchronous invocation destinations do
	// not support FIFO queues.
	s.ResultsDLQ = awssqs.NewQueue(s.Construct, jsii.String("ResultsDLQ"), s.encryption(&awssqs.QueueProps{
		RetentionPeriod: days,
	}))
	s.ResultsQueue = awssqs.NewQueue(s.Construct, jsii.String("ResultsQueue"), s.encryption(&awssqs.QueueProps{
		// Six times dispatch's timeout, as Lambda advises.
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(6 * s.props.Functions[Dispatch].Timeout.Seconds())),
		RetentionPeriod:   days,
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: s.ResultsDLQ, MaxReceiveCount: jsii.Number(ResultsMaxReceives)},
	}))
}

// pushes reports whether any pool pushes.
func (s *Parkinglot) pushes() bool { return s.props.pushes() }

// functions builds the four functions from their zips: provided.al2023 on
// arm64, JSON logs into a log group of their own, the memory, timeout and
// reserved concurrency of Props.Functions.
func (s *Parkinglot) functions() {
	for _, f := range Functions {
		name, fp := string(f), s.props.Functions[f]
		logs := awslogs.NewLogGroup(s.Construct, jsii.String("Logs-"+name), &awslogs.LogGroupProps{
			Retention:     awslogs.RetentionDays_ONE_MONTH,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		props := &awslambda.FunctionProps{
			Description:   jsii.String("Parkinglot " + name),
			Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
			Architecture:  awslambda.Architecture_ARM_64(),
			Handler:       jsii.String("bootstrap"),
			Code:          awslambda.Code_FromAsset(jsii.String(s.props.Zip(f)), nil),
			MemorySize:    jsii.Number(fp.MemoryMB),
			Timeout:       awscdk.Duration_Seconds(jsii.Number(fp.Timeout.Seconds())),
			LogGroup:      logs,
			LoggingFormat: awslambda.LoggingFormat_JSON,
			Environment:   s.env(f),
		}
		if fp.ReservedConcurrency != Unreserved {
			props.ReservedConcurrentExecutions = jsii.Number(fp.ReservedConcurrency)
		}
		s.Functions[f] = awslambda.NewFunction(s.Construct, jsii.String("Fn-"+name), props)
	}
	s.Functions[Submit].AddEventSource(awslambdaeventsources.NewSqsEventSource(s.SubmitQueue,
		&awslambdaeventsources.SqsEventSourceProps{
			BatchSize:               jsii.Number(10),
			ReportBatchItemFailures: jsii.Bool(true),
		}))
	if s.ResultsQueue != nil {
		s.Functions[Dispatch].AddEventSource(awslambdaeventsources.NewSqsEventSource(s.ResultsQueue,
			&awslambdaeventsources.SqsEventSourceProps{
				BatchSize:               jsii.Number(10),
				ReportBatchItemFailures: jsii.Bool(true),
			}))
	}
}

// env is function f's environment (Props.environment), with the table's
// name.
func (s *Parkinglot) env(f Function) *map[string]*string {
	env := map[string]*string{}
	for k, v := range s.props.environment(f, *s.Table.TableName(), same) {
		env[k] = jsii.String(v)
	}
	return &env
}

// pools writes the pools into the table at deploy time: a custom resource
// (lambdaapi.PoolsResourceType) served by expire, whose properties carry
// the pools (PoolsJSON) and the table's name. CloudFormation invokes expire
// with the resource's Create and Update (a changed pool, or a replaced
// table), and expire applies the pools (created, updated or unchanged;
// counters kept) and answers; Delete leaves the retained table alone.
// Expire's grants cover what applying takes (PutPool: GetItem,
// BatchGetItem, UpdateItem, and a transaction that puts, updates, checks
// and deletes slot shard items). CloudFormation invokes expire with the
// deployer's credentials: no resource policy is needed.
func (s *Parkinglot) pools() {
	s.PoolsResource = awscdk.NewCustomResource(s.Construct, jsii.String("Pools"), &awscdk.CustomResourceProps{
		ServiceToken: s.Functions[Expire].FunctionArn(),
		ResourceType: jsii.String(lambdaapi.PoolsResourceType),
		Properties: &map[string]any{
			lambdaapi.PropPools: PoolsJSON(s.props.Pools),
			lambdaapi.PropTable: s.Table.TableName(),
		},
	})
}

// PoolsJSON is pools in the form of the pools custom resource's Pools
// property: a JSON array of lambdaapi.PoolSpec, every field of the pool
// but its target (TargetsJSON).
func PoolsJSON(pools []Pool) string {
	out := make([]lambdaapi.PoolSpec, len(pools))
	for i, p := range pools {
		out[i] = lambdaapi.PoolSpecOf(p.core())
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err) // plain values: cannot fail
	}
	return string(b)
}

// TargetsJSON is the push pools' targets in the form of the functions'
// PARKINGLOT_TARGETS (lambdaapi.EnvTargets): an object by pool name. A
// target names its function, queue and secret by their ARN or URL, tokens
// that CloudFormation resolves; an HTTP target's secret by its ARN only.
func TargetsJSON(pools []Pool) string { return targetsJSON(pools, same) }

// targetsJSON is TargetsJSON with each reference as ref makes it.
func targetsJSON(pools []Pool, ref func(string) string) string {
	out := map[string]*envTarget{}
	for _, p := range pools {
		if p.Target != nil {
			out[p.Name] = p.Target.target().env(ref)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err) // plain values: cannot fail
	}
	return string(b)
}

// accessLogFormat is the API's access log line: JSON, with the request id
// that the functions' logs carry too.
const accessLogFormat = `{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",` +
	`"requestTime":"$context.requestTime","routeKey":"$context.routeKey","status":"$context.status",` +
	`"protocol":"$context.protocol","responseLength":"$context.responseLength",` +
	`"latency":"$context.responseLatency","integrationLatency":"$context.integrationLatency",` +
	`"integrationError":"$context.integrationErrorMessage","authorizerError":"$context.authorizer.error"}`

// corsRoute is the route that lets CORS preflight requests past the JWT
// authorizer of the $default route.
const corsRoute = "/{proxy+}"

// api builds the HTTP API: a JWT authorizer on every route, one route per
// lambdaapi.Routes entry to its function (payload v2), the $default route
// to lambdaapi.DefaultRoute, and the $default stage with access logs and
// throttling; with Props.CORS, CORS and the preflight route; with
// Props.Domain, the custom domain mapped to the stage.
func (s *Parkinglot) api() {
	auth := awsapigatewayv2authorizers.NewHttpJwtAuthorizer(jsii.String("Jwt"), jsii.String(s.props.JWTIssuer),
		&awsapigatewayv2authorizers.HttpJwtAuthorizerProps{
			JwtAudience:    jsii.Strings(s.props.JWTAudience...),
			IdentitySource: jsii.Strings("$request.header.Authorization"),
		})
	integrations := map[Function]awsapigatewayv2integrations.HttpLambdaIntegration{}
	for _, f := range Functions {
		integrations[f] = awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("Integration-"+string(f)),
			s.Functions[f], &awsapigatewayv2integrations.HttpLambdaIntegrationProps{
				PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_2_0(),
			})
	}
	s.API = awsapigatewayv2.NewHttpApi(s.Construct, jsii.String("Api"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String(s.props.Name),
		Description:        jsii.String("Parkinglot HTTP API v1"),
		DefaultAuthorizer:  auth,
		DefaultIntegration: integrations[Function(lambdaapi.DefaultRoute)],
		CreateDefaultStage: jsii.Bool(false),
		CorsPreflight:      s.props.CORS,
	})
	for _, r := range lambdaapi.Routes() {
		s.API.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(r.Path),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod(r.Method)},
			Integration: integrations[Function(r.Function)],
		})
	}
	if s.props.CORS != nil {
		// API Gateway answers the preflight itself; the route exists so
		// that OPTIONS does not fall to the authorized $default route.
		s.preflight = *s.API.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(corsRoute),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_OPTIONS},
			Integration: integrations[Function(lambdaapi.DefaultRoute)],
			Authorizer:  awsapigatewayv2.NewHttpNoneAuthorizer(),
		})
	}
	s.AccessLogs = awslogs.NewLogGroup(s.Construct, jsii.String("ApiAccessLogs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_THREE_MONTHS,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// RouteSettings is untyped JSON in CloudFormation's schema: its keys
	// are passed as they are.
	routeSettings := map[string]any{}
	for k, t := range s.props.RouteThrottles {
		routeSettings[k] = map[string]any{
			"DetailedMetricsEnabled": true,
			"ThrottlingBurstLimit":   t.BurstLimit,
			"ThrottlingRateLimit":    t.RateLimit,
		}
	}
	stage := &awsapigatewayv2.CfnStageProps{
		ApiId:      s.API.ApiId(),
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		AccessLogSettings: &awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
			DestinationArn: s.AccessLogs.LogGroupArn(),
			Format:         jsii.String(accessLogFormat),
		},
		DefaultRouteSettings: &awsapigatewayv2.CfnStage_RouteSettingsProperty{
			DetailedMetricsEnabled: jsii.Bool(true),
			ThrottlingBurstLimit:   jsii.Number(s.props.Throttle.BurstLimit),
			ThrottlingRateLimit:    jsii.Number(s.props.Throttle.RateLimit),
		},
	}
	if len(routeSettings) > 0 {
		stage.RouteSettings = routeSettings
	}
	s.Stage = awsapigatewayv2.NewCfnStage(s.Construct, jsii.String("Stage"), stage)
	if d := s.props.Domain; d != nil {
		s.Domain = awsapigatewayv2.NewDomainName(s.Construct, jsii.String("Domain"), &awsapigatewayv2.DomainNameProps{
			DomainName:  jsii.String(d.Name),
			Certificate: d.Certificate,
		})
		awsapigatewayv2.NewCfnApiMapping(s.Construct, jsii.String("DomainMapping"), &awsapigatewayv2.CfnApiMappingProps{
			ApiId:      s.API.ApiId(),
			DomainName: s.Domain.Name(),
			Stage:      s.Stage.Ref(),
		})
	}
}

// schedule runs expire every minute (expiry, lease reclaim, outbox
// re-sends, safety-net dispatch). A tick older than a minute is dropped:
// the next one does the same work.
func (s *Parkinglot) schedule() {
	awsevents.NewRule(s.Construct, jsii.String("ExpireSchedule"), &awsevents.RuleProps{
		Description: jsii.String("Parkinglot sweep: expiry, lease reclaim, outbox re-sends"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(1))),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(s.Functions[Expire],
			&awseventstargets.LambdaFunctionProps{
				RetryAttempts: jsii.Number(2),
				MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(1)),
			})},
	})
}

// eventSubmissions routes the events of Props.EventSources on the default
// bus to submit. Submit is invoked asynchronously: Lambda retries a failed
// invocation twice, then sends the event to the submit DLQ.
func (s *Parkinglot) eventSubmissions() {
	if len(s.props.EventSources) == 0 {
		return
	}
	submit := s.Functions[Submit]
	submit.ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{
		RetryAttempts: jsii.Number(2),
		MaxEventAge:   awscdk.Duration_Hours(jsii.Number(6)),
		OnFailure:     awslambdadestinations.NewSqsDestination(s.SubmitDLQ),
	})
	awsevents.NewRule(s.Construct, jsii.String("SubmitEvents"), &awsevents.RuleProps{
		Description:  jsii.String("Parkinglot event-driven submissions"),
		EventPattern: &awsevents.EventPattern{Source: jsii.Strings(sortedKeys(s.props.EventSources)...)},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(submit,
			&awseventstargets.LambdaFunctionProps{DeadLetterQueue: s.SubmitDLQ, RetryAttempts: jsii.Number(8)})},
	})
	if k := s.props.EncryptionKey; k != nil {
		// EventBridge writes failed events into the encrypted submit DLQ
		// with its own principal, which the key's policy must allow (an
		// imported key's policy is left as it is).
		k.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)},
			Actions:    jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"),
			Resources:  jsii.Strings("*"),
		}), jsii.Bool(true))
	}
}
