// Command userapp is a CDK app of someone else's: a stack of its own
// resources that embeds Parkinglot through the public package alone. The
// construct tests build and run it, then read what it synthesized.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(os.Getenv("USERAPP_OUT"))})
	stack := awscdk.NewStack(app, jsii.String("UserStack"), nil)

	key := awskms.NewKey(stack, jsii.String("DataKey"), &awskms.KeyProps{EnableKeyRotation: jsii.Bool(true)})
	producer := awsiam.NewRole(stack, jsii.String("Producer"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), nil),
	})
	worker := awsiam.NewRole(stack, jsii.String("Worker"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), nil),
	})

	// The push pools' targets: a function of the app's (two pools share
	// it), a function of another app's (imported with its role) invoked
	// through an alias, a webhook signed with a secret, and a queue with a
	// key of its own.
	thumbs := awslambda.NewFunction(stack, jsii.String("Thumbs"), &awslambda.FunctionProps{
		Runtime: awslambda.Runtime_PYTHON_3_13(),
		Handler: jsii.String("index.handler"),
		Code:    awslambda.Code_FromInline(jsii.String("def handler(event, context):\n    return {'ok': True}\n")),
	})
	reports := awslambda.Function_FromFunctionAttributes(stack, jsii.String("Reports"), &awslambda.FunctionAttributes{
		FunctionArn: jsii.String("arn:aws:lambda:us-east-1:123456789012:function:reports"),
		Role: awsiam.Role_FromRoleArn(stack, jsii.String("ReportsRole"),
			jsii.String("arn:aws:iam::123456789012:role/reports"), nil),
		SameEnvironment: jsii.Bool(true),
	})
	hookSecret := awssecretsmanager.NewSecret(stack, jsii.String("HookSecret"), nil)
	queueKey := awskms.NewKey(stack, jsii.String("QueueKey"), &awskms.KeyProps{EnableKeyRotation: jsii.Bool(true)})
	jobs := awssqs.NewQueue(stack, jsii.String("Jobs"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_KMS, EncryptionMasterKey: queueKey, EnforceSSL: jsii.Bool(true),
	})

	pl := parkinglot.New(stack, "Scheduler", &parkinglot.Props{
		Name: "UserScheduler",
		Pools: []parkinglot.Pool{
			{Name: "render", Capacity: 8, MaxParked: 100, Executor: parkinglot.ExecutorPull},
			{Name: "mail", Capacity: 2, MaxParked: 50, DefaultMaxWait: time.Hour},
			{Name: "thumbs", Capacity: 4, MaxParked: 100, Target: parkinglot.LambdaTarget(thumbs)},
			{Name: "reports", Capacity: 1, MaxParked: 10, Executor: parkinglot.ExecutorPush, RunTimeout: 30 * time.Second,
				Target: parkinglot.LambdaTarget(reports, parkinglot.Qualifier("live"), parkinglot.MaxAttempts(3))},
			{Name: "hooks", Capacity: 2, MaxParked: 10, Target: parkinglot.HTTPTarget("https://hooks.example.com/parkinglot",
				hookSecret, parkinglot.HTTPAsync, parkinglot.DeliveryTimeout(10*time.Second))},
			{Name: "jobs", Capacity: 3, MaxParked: 10, Target: parkinglot.SQSTarget(jobs)},
			// A second pool on the app's function, with a shorter run timeout.
			{Name: "previews", Capacity: 2, MaxParked: 10, RunTimeout: 2 * time.Minute, Target: parkinglot.LambdaTarget(thumbs)},
		},
		JWTIssuer:    "https://auth.example.com/",
		JWTAudience:  []string{"scheduler"},
		LambdaDir:    os.Getenv("USERAPP_LAMBDA_DIR"),
		QueuePrefix:  "user-",
		EventSources: map[string]string{"user.orders": "orders"},
		Functions: map[parkinglot.Function]parkinglot.FunctionProps{
			parkinglot.Dispatch: {MemoryMB: 512, ReservedConcurrency: 10},
			parkinglot.Mailbox:  {Timeout: 29 * time.Second, ReservedConcurrency: parkinglot.Unreserved},
		},
		CORS: &awsapigatewayv2.CorsPreflightOptions{
			AllowOrigins: jsii.Strings("https://app.example.com"),
			AllowMethods: &[]awsapigatewayv2.CorsHttpMethod{awsapigatewayv2.CorsHttpMethod_GET, awsapigatewayv2.CorsHttpMethod_POST},
			AllowHeaders: jsii.Strings("authorization", "content-type"),
		},
		Domain: &parkinglot.Domain{
			Name: "scheduler.example.com",
			Certificate: awscertificatemanager.Certificate_FromCertificateArn(stack, jsii.String("Cert"),
				jsii.String("arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000")),
		},
		Throttle:       parkinglot.Throttle{RateLimit: 100, BurstLimit: 200},
		RouteThrottles: map[string]parkinglot.Throttle{"POST /v1/pools/{pool}/tasks": {RateLimit: 20, BurstLimit: 40}},
		EncryptionKey:  key,
	})
	pl.GrantSubmit(producer)
	pl.GrantWorker(worker)

	out := func(id string, v *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Value: v})
	}
	out("Url", pl.URL())
	out("Table", pl.Table.TableName())
	out("RenderQueue", pl.PoolQueues["render"].QueueUrl())
	out("Dispatch", pl.Function(parkinglot.Dispatch).FunctionName())
	out("Alarms", pl.AlarmTopic.TopicArn())
	out("Results", pl.ResultsQueue.QueueUrl())
	out("DomainTarget", pl.Domain.RegionalDomainName())

	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	asm := app.Synth(nil)
	st := asm.GetStackArtifact(stack.ArtifactId())
	// The findings under the construct, as a JSON list of "path: message".
	findings := []string{}
	for _, m := range *st.Messages() {
		if (m.Level == cxapi.SynthesisMessageLevel_ERROR || m.Level == cxapi.SynthesisMessageLevel_WARNING) &&
			strings.HasPrefix(*m.Id, "/UserStack/Scheduler/") {
			findings = append(findings, fmt.Sprint(*m.Id, ": ", m.Entry.Data))
		}
	}
	b, _ := json.Marshal(map[string]any{"template": *st.TemplateFullPath(), "findings": findings})
	fmt.Println(string(b))
}
