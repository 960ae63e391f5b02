// Command parkinglot is Parkinglot's native runtime and its command-line
// client.
//
//	parkinglot serve [--config FILE]     run the server (HTTP API v1, /healthz, /metrics, sweeper)
//	parkinglot submit POOL [flags]       submit a task
//	parkinglot status ID                 show a task
//	parkinglot complete ID --lease L     complete a running task
//	parkinglot heartbeat ID --lease L    extend a running task's lease
//	parkinglot cancel ID                 cancel a parked or running task
//	parkinglot mailbox RECIPIENT         read (and --ack) a mailbox
//	parkinglot audit                     read the audit trail
//	parkinglot pools [POOL]              show pools
//	parkinglot pools apply --config FILE write FILE's pools to its store
//	parkinglot claim POOL [--max N]      claim tasks of a pull pool (a worker's token)
//	parkinglot work POOL -- CMD [ARGS]   run CMD once per task claimed from a pull pool
//	parkinglot loadtest [flags]          drive a server and check its invariants
//	parkinglot check --data DIR          verify an embedded store offline
//
// Client commands take --server URL (env PARKINGLOT_SERVER, default
// http://127.0.0.1:8080), --token T (env PARKINGLOT_TOKEN) and --json.
//
// Exit codes, for scripts:
//
//	0  ok
//	1  any other failure (server unreachable, internal error)
//	2  usage: bad flags or arguments, or the server rejected the request as invalid (400, 413)
//	3  not found: no such task or pool (404)
//	4  conflict: lease lost, idempotency key conflict, task in the wrong state (409)
//	5  rejected: the pool's parked depth is full (429)
//	6  unauthorized: missing or unknown token, or one whose role may not do this (401, 403)
//
// Without --config, serve uses the built-in sample configuration (see
// `parkinglot serve --print-sample`).
package main
