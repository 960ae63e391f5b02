package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes; see the package documentation.
const (
	exitOK           = 0
	exitOther        = 1
	exitUsage        = 2
	exitNotFound     = 3
	exitConflict     = 4
	exitRejected     = 5
	exitUnauthorized = 6
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: parkinglot COMMAND [flags]

commands:
  serve       run the server: HTTP API v1, /healthz, /metrics and the sweeper
  submit      submit a task to a pool
  status      show a task
  complete    complete a running task
  heartbeat   extend a running task's lease
  cancel      cancel a parked or running task
  mailbox     read a recipient's mailbox
  audit       read the audit trail
  pools       show pools; 'pools apply --config FILE' writes a file's pools to its store
  claim       claim tasks of a pull pool (a worker's token)
  work        run a command once per task claimed from a pull pool
  loadtest    drive a server with permit or pull workers and check its invariants
  check       verify an embedded store's data directory offline (--data DIR)
  migrate     apply the postgres store's schema migrations (--config FILE)
  version     print the version, VCS commit and Go version (also --version)

Run 'parkinglot COMMAND -h' for a command's flags.
Exit codes: 0 ok, 1 other, 2 usage, 3 not found, 4 conflict or lease lost,
5 rejected (pool full), 6 unauthorized.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "loadtest":
		return loadtestCmd(ctx, rest, stdout, stderr)
	case "work":
		return workCmd(ctx, rest, stderr)
	case "check":
		return checkCmd(rest, stdout, stderr)
	case "migrate":
		return migrateCmd(ctx, rest, stdout, stderr)
	case "pools":
		if isPoolsApply(rest) {
			return poolsApplyCmd(ctx, rest[1:], stdout, stderr)
		}
	case "version", "--version":
		return versionCmd(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if c, ok := clientCommands[cmd]; ok {
		return runClientCommand(ctx, cmd, c, rest, stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "parkinglot: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}
