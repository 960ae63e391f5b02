// Package mototest runs moto, the AWS service emulator, for tests of the
// DynamoDB + SQS backend.
//
// It starts tests/moto/serialized_moto.py (python3 with moto installed) on a
// free loopback port and stops it when the test or the package is done. That
// launcher serves DynamoDB requests one at a time, because moto's DynamoDB is
// not atomic under concurrency while real DynamoDB is; its header explains the
// measurements. A missing python3 or moto fails the test: AWS-facing code is
// never silently left untested.
package mototest
