// Package stack defines Parkinglot's serverless stack as an AWS CDK stack:
// the DynamoDB table of pkg/awsstore (built from awsstore.TableSchema), one
// SQS FIFO parking queue per pool with its dead-letter queue, the submit
// queue for event-driven submissions, the four Lambda functions from
// prebuilt zips, the HTTP API with its JWT authorizer and the routes of
// lambdaapi.Routes, the EventBridge schedule of expire, least-privilege
// grants per function, alarms, a dashboard and API access logs.
//
// Pools come from a server configuration file (its pools block, parsed by
// internal/config): each gets its parking queue, and the functions receive
// them in their environment (lambdaapi.EnvPools) and put them into the
// table at cold start, keeping their counters.
//
// New builds the stack; Checks applies cdk-nag's AwsSolutions rules, whose
// remaining findings are suppressed in this package with a written reason.
package stack
