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
	cfg, code, ok := configCommand("migrate", "configuration `file` (YAML) with store.type postgres",
		"Applies the postgres store's pending schema migrations (forward-only, under an advisory\nlock) to store.dsn (or $"+config.PostgresDSNEnv+") and store.schema, and exits.",
		args, stderr)
	if !ok {
		return code
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

// configCommand parses the arguments of subcommand name, which takes
// --config FILE alone (flagUsage describes it; about, what the command
// does), and loads the file. When the command cannot go on (help asked, a
// usage error, a bad file) it reports false and the exit code to return.
func configCommand(name, flagUsage, about string, args []string, stderr io.Writer) (config.Config, int, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", flagUsage)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: parkinglot %s --config FILE\n\n%s\n\nflags:\n", name, about)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config.Config{}, exitOK, false
		}
		return config.Config{}, exitUsage, false
	}
	if fs.NArg() > 0 || *path == "" {
		fs.Usage()
		return config.Config{}, exitUsage, false
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot %s: %v\n", name, err)
		return config.Config{}, exitUsage, false
	}
	return cfg, 0, true
}
