// Package parkinglot is Parkinglot's serverless deployment as a reusable
// AWS CDK construct, for embedding in any CDK app written in Go:
//
//	pl := parkinglot.New(stack, "Scheduler", &parkinglot.Props{
//		Pools:       []parkinglot.Pool{{Name: "gpu", Capacity: 4, MaxParked: 1000}},
//		JWTIssuer:   "https://issuer.example.com/",
//		JWTAudience: []string{"parkinglot"},
//		LambdaDir:   "dist/lambda",
//	})
//	pl.GrantSubmit(producerRole)
//
// It builds the DynamoDB table of pkg/awsstore (from awsstore.TableSchema),
// one SQS FIFO parking queue per pool with its dead-letter queue, the
// submit queue for event-driven submissions, with push pools (Pool.Target)
// the results queue that dispatch consumes, the four Lambda functions from
// prebuilt zips (make lambdas), the HTTP API with its JWT authorizer and
// the routes of the API, the once-a-minute schedule of expire, grants
// narrowed to the calls each function makes (pushing to the targets
// included), the lambda targets' destinations, alarms on an SNS topic, a
// dashboard and the API's access logs. cdk-nag's AwsSolutions findings
// that the construct accepts are suppressed on its own resources, each with
// its reason.
package parkinglot
