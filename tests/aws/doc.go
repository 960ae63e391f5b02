// Package aws tests Parkinglot's DynamoDB + SQS backend end to end on moto
// (internal/mototest, with DynamoDB requests serialized): the real
// `parkinglot serve` binary on a store of type aws under the HTTP API v1
// contract suite and a load with crashed workers, crash points injected after
// every AWS call of each operation and repaired by a fresh process's
// sweeper, and several schedulers dispatching over one table at once.
//
// moto numbers are never performance figures: it serves about 200
// conditional writes per second on one core.
package aws
