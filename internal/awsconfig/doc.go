// Package awsconfig builds the DynamoDB + SQS backend (pkg/awsstore) from
// its settings: the store block of the server's configuration, or the
// environment of a Lambda function. It builds the SDK clients once, with
// awsstore's retryer, and creates the table and queues when asked (local
// use). `parkinglot serve` and the Lambda functions share it.
package awsconfig
