package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
)

// migrateCmd applies the postgres store's pending schema migrations and
// exits, so that an operator can migrate before rolling out servers (which
// otherwise migrate at start-up, under the same advisory lock).
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `file` (YAML) with store.type postgres")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: parkinglot migrate --config FILE\n\nApplies the postgres store's pending schema migrations (forward-only, under an advisory\nlock) to store.dsn (or $"+config.PostgresDSNEnv+") and store.schema, and exits.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || *path == "" {
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot migrate: %v\n", err)
		return exitUsage
	}
	if cfg.Store.Type != config.StorePostgres {
		fmt.Fprintf(stderr, "parkinglot migrate: store.type is %q: only the postgres store has migrations\n", cfg.Store.Type)
		return exitUsage
	}
	applied, err := pgstore.Migrate(ctx, cfg.Store.DSN, cfg.Store.Schema)
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot migrate: %v\n", err)
		return exitOther
	}
	schema := cfg.Store.Schema
	if schema == "" {
		schema = pgstore.DefaultSchema
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "schema %s is at version %d: nothing to apply\n", schema, pgstore.SchemaVersion())
		return exitOK
	}
	fmt.Fprintf(stdout, "schema %s: applied migrations %v; now at version %d\n", schema, applied, pgstore.SchemaVersion())
	return exitOK
}
