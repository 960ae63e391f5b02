// Package lambda runs the end-to-end tests of the local serverless runtime:
// the real parkinglot binary serving with `runtime: lambda` over the aws
// store on moto, so that every request goes through the four Lambda
// handlers over DynamoDB + SQS.
package lambda
