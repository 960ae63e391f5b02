package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/parkinglot/parkinglot/internal/poolapply"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// poolsApplyCmd writes the configuration file's pools to its store and
// exits: for a store that the server does not own alone, such as the aws
// store of a serverless deployment, whose functions read the pools from the
// table and never write them. Each pool is reported created, updated or
// unchanged; counters are kept. A change of slotShards while the pool's
// tasks run is refused by the aws store, which stops the command with exit
// code 4 after the pools before it were applied.
func poolsApplyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := configCommand("pools apply", "configuration `file` (YAML): its store and pools",
		"Creates or updates the file's pools in its store (counters kept; pools not in the file are\nleft alone) and reports each as created, updated or unchanged.",
		args, stderr)
	if !ok {
		return code
	}
	backend, closeStore, err := openStore(ctx, cfg.Store, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot pools apply: %v\n", err)
		return exitOther
	}
	pools := make([]core.PoolConfig, len(cfg.Pools))
	for i, p := range cfg.Pools {
		pools[i] = p.Core()
	}
	res, err := poolapply.Apply(ctx, backend, pools)
	if cerr := closeStore(); cerr != nil && err == nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	for _, l := range []struct {
		what  string
		names []string
	}{{"created", res.Created}, {"updated", res.Updated}, {"unchanged", res.Unchanged}} {
		for _, n := range l.names {
			fmt.Fprintf(stdout, "%-9s %s\n", l.what, n)
		}
	}
	fmt.Fprintf(stdout, "%d created, %d updated, %d unchanged\n", len(res.Created), len(res.Updated), len(res.Unchanged))
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot pools apply: %v\n", err)
		if errors.Is(err, core.ErrInvalid) {
			return exitConflict
		}
		return exitOther
	}
	return exitOK
}

// isPoolsApply reports whether args (after the command name "pools") are
// those of `pools apply`.
func isPoolsApply(args []string) bool {
	return len(args) > 0 && args[0] == "apply"
}
