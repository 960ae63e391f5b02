package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

const workUsage = "usage: parkinglot work POOL [flags] -- COMMAND [ARGS...]"

// workCmd runs COMMAND once per task claimed from the pull pool POOL, as a
// worker: the payload on its stdin, its stdout (JSON, or else taken as a
// JSON string) as the result; exit status 0 succeeds the task, any other
// fails it with the tail of stderr. It runs until interrupted, then waits
// for the running commands up to --shutdown-timeout.
func workCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("work", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("PARKINGLOT_SERVER", client.DefaultServer), "server `URL` (env PARKINGLOT_SERVER)")
	token := fs.String("token", os.Getenv("PARKINGLOT_TOKEN"), "a worker's bearer `token` (env PARKINGLOT_TOKEN)")
	concurrency := fs.Int("concurrency", 1, "commands to run at once in this process (the pool's capacity holds across all workers)")
	shutdown := fs.Duration("shutdown-timeout", 30*time.Second, "how long to wait for running commands once interrupted")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nrun COMMAND once per task claimed from the pull pool POOL: payload on stdin, stdout as the result,\n"+
			"exit status 0 succeeds the task, any other fails it with the tail of stderr.\n"+
			"The command's environment has PARKINGLOT_TASK_ID, PARKINGLOT_TENANT and PARKINGLOT_POOL.\n\nflags:\n", workUsage)
		fs.PrintDefaults()
	}
	// Everything after the first "--" is the command, verbatim: its own
	// flags are not ours.
	i := slices.Index(args, "--")
	if i < 0 {
		fmt.Fprintln(stderr, workUsage)
		return exitUsage
	}
	command := args[i+1:]
	pos, err := parseInterspersed(fs, args[:i])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) != 1 || len(command) == 0 || *concurrency < 1 {
		fmt.Fprintln(stderr, workUsage)
		return exitUsage
	}
	c, err := client.New(*server, *token)
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot work: %v\n", err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	pool := pos[0]
	log.Info("working", "pool", pool, "server", *server, "concurrency", *concurrency, "command", strings.Join(command, " "))
	err = worker.Run(ctx, c, worker.Options{Pool: pool, Concurrency: *concurrency, ShutdownTimeout: *shutdown, Logger: log},
		func(ctx context.Context, t *worker.Task) (any, error) { return runCommand(ctx, command, t) })
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot work: %v\n", err)
		return exitOther
	}
	return exitOK
}

// stderrTail is how much of a failed command's stderr its error keeps.
const stderrTail = 2048

// runCommand runs command for t and returns its result.
func runCommand(ctx context.Context, command []string, t *worker.Task) (any, error) {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdin = bytes.NewReader(t.Payload)
	cmd.Env = append(os.Environ(), "PARKINGLOT_TASK_ID="+t.ID, "PARKINGLOT_TENANT="+t.Tenant, "PARKINGLOT_POOL="+t.Pool)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: core.MaxResultBytes}
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		tail := stderr.String()
		if len(tail) > stderrTail {
			tail = "..." + tail[len(tail)-stderrTail:]
		}
		tail = strings.ToValidUTF8(strings.TrimSpace(tail), "\uFFFD")
		if tail == "" {
			return nil, err
		}
		return nil, fmt.Errorf("%v: %s", err, tail)
	}
	if stdout.Len() > core.MaxResultBytes {
		return nil, fmt.Errorf("stdout is over the %d bytes a result may hold", core.MaxResultBytes)
	}
	out := bytes.TrimSpace(stdout.Bytes())
	switch {
	case len(out) == 0:
		return nil, nil
	case json.Valid(out):
		return json.RawMessage(out), nil
	}
	return strings.ToValidUTF8(string(out), "\uFFFD"), nil
}

// limitedBuffer keeps up to max+1 bytes, enough to tell that a command's
// output was over max, and discards the rest.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max + 1 - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func claimFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	maxTasks := fs.Int("max", 1, "tasks to claim at most, 1-10")
	wait := fs.Duration("wait", 0, "how long to wait for a task, up to 20s")
	return func(ctx context.Context, e *env, args []string) error {
		tasks, err := e.c.Claim(ctx, args[0], client.ClaimOptions{Max: *maxTasks, Wait: *wait})
		if err != nil {
			return err
		}
		if e.json {
			writeJSON(e.stdout, api.ClaimResponse{Tasks: tasks})
			return nil
		}
		if len(tasks) == 0 {
			fmt.Fprintln(e.stdout, "no task")
		}
		for i := range tasks {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			printTask(e.stdout, &tasks[i])
		}
		return nil
	}
}
