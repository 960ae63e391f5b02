package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/parkinglot/parkinglot/internal/loadtest"
	"github.com/parkinglot/parkinglot/pkg/client"
)

func loadtestCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadtest.Config
	fs.StringVar(&cfg.Server, "server", envOr("PARKINGLOT_SERVER", client.DefaultServer), "server `URL` (env PARKINGLOT_SERVER)")
	tokens := fs.String("tokens", os.Getenv("PARKINGLOT_TOKEN"), "comma-separated bearer tokens, one per tenant (env PARKINGLOT_TOKEN)")
	pools := fs.String("pools", "", "comma-separated pools (default: every pool of the server)")
	fs.IntVar(&cfg.Submissions, "n", 1000, "submissions")
	fs.IntVar(&cfg.Submitters, "submitters", 32, "concurrent submitters")
	fs.StringVar(&cfg.Mode, "mode", "permit", "permit (workers take starts from their mailboxes) or pull (worker processes claim, with pkg/worker)")
	workerTokens := fs.String("worker-tokens", "", "pull mode: comma-separated worker tokens, one per worker process (a token may repeat)")
	fs.IntVar(&cfg.Workers, "workers", 4, "permit mode: workers per tenant; pull mode: each worker process's concurrency per pool")
	fs.DurationVar(&cfg.Hold, "hold", 0, "how long a worker holds a task before completing it (default 5ms)")
	fs.Float64Var(&cfg.CrashFraction, "crash", 0, "fraction of started tasks whose worker crashes (never completes)")
	fs.DurationVar(&cfg.RunTimeout, "run-timeout", 0, "lease length of every task (default 2s)")
	fs.DurationVar(&cfg.MaxWait, "max-wait", 0, "how long a task may stay parked (default 2m)")
	fs.Float64Var(&cfg.ShortWaitFraction, "short-wait-fraction", 0, "fraction of tasks submitted with --short-wait instead")
	fs.DurationVar(&cfg.ShortWait, "short-wait", 0, "maxWait of the short-wait tasks (default 20ms)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "bound on the whole run (default max-wait + run-timeout + 1m)")
	progress := fs.Bool("progress", true, "show a progress bar on a terminal")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: parkinglot loadtest --tokens T1,T2,... [flags]\n\nDrives the server with permit-mode workers, or pull-mode worker processes, and checks hard capacity, exactly one outcome\nper task and no late start with an observer independent of the server. Exit 0 if all hold.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || *tokens == "" {
		fs.Usage()
		return exitUsage
	}
	cfg.Tokens = splitList(*tokens)
	cfg.WorkerTokens = splitList(*workerTokens)
	cfg.Pools = splitList(*pools)
	if f, ok := stderr.(*os.File); ok && *progress && term.IsTerminal(int(f.Fd())) {
		cfg.Progress = stderr
	}
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot loadtest: %v\n", err)
		return exitOther
	}
	rep.Print(stdout)
	if !rep.OK() {
		fmt.Fprintln(stdout, "FAIL: the observer found invariant violations")
		return exitOther
	}
	return exitOK
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
