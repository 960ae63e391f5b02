// Package awsfault injects process deaths into pkg/awsstore's AWS calls.
//
// An Injector wraps the real SDK clients behind awsstore's narrow client
// interfaces (awsstore.DynamoDBAPI, awsstore.SQSAPI). Every call it lets
// through goes to the real service (or to moto) unchanged. Armed with
// Arm(n), it lets n more calls through and then "kills the process": that
// call and every later one fail with ErrDead before anything is sent, as if
// the process had died right after the n-th call returned. A test arms it
// before one operation of a Store built on its clients, runs the operation,
// and then repairs the state with a fresh Store and Scheduler on clean
// clients, as a restarted process would.
//
// Enumerate n from 0 until the operation completes without reaching the
// limit (Dead reports false) to cover every crash point of the operation.
package awsfault
