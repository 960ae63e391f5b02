// Command mailbox is the mailbox Lambda function of Parkinglot's serverless
// deployment: mailbox, ack, audit, task and pool reads, and API Gateway's $default route. Its environment is described by
// lambdaapi.LoadEnv. Build it as bootstrap for provided.al2023:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./functions/mailbox
package main

import "github.com/parkinglot/parkinglot/internal/lambdaapi"

func main() { lambdaapi.Main(lambdaapi.Mailbox) }
