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

	pl := parkinglot.New(stack, "Scheduler", &parkinglot.Props{
		Name: "UserScheduler",
		Pools: []parkinglot.Pool{
			{Name: "render", Capacity: 8, MaxParked: 100, Executor: parkinglot.ExecutorPull},
			{Name: "mail", Capacity: 2, MaxParked: 50, DefaultMaxWait: time.Hour},
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
