// Command dispatch is the dispatch Lambda function of Parkinglot's serverless
// deployment: heartbeat, complete and cancel; a release wakes parked work inline. Its environment is described by
// lambdaapi.LoadEnv. Build it as bootstrap for provided.al2023:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./functions/dispatch
package main

import "github.com/parkinglot/parkinglot/internal/lambdaapi"

func main() { lambdaapi.Main(lambdaapi.Dispatch) }
