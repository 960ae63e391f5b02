// Command expire is the expire Lambda function of Parkinglot's serverless
// deployment: the scheduled sweep: expiry, lease reclaim, outbox re-sends, safety-net dispatch; and the stack's pools
// custom resource, whose pools it applies to the table (lambdaapi.Handler.CustomResource). Its environment is described by
// lambdaapi.LoadEnv. Build it as bootstrap for provided.al2023:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./functions/expire
package main

import "github.com/parkinglot/parkinglot/internal/lambdaapi"

func main() { lambdaapi.Main(lambdaapi.Expire) }
