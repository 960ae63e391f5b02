// Command submit is the submit Lambda function of Parkinglot's serverless
// deployment: POST /v1/pools/{pool}/tasks and event-driven submissions from SQS and EventBridge. Its environment is described by
// lambdaapi.LoadEnv. Build it as bootstrap for provided.al2023:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./functions/submit
package main

import "github.com/parkinglot/parkinglot/internal/lambdaapi"

func main() { lambdaapi.Main(lambdaapi.Submit) }
