package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
)

// openStore builds the backend that cfg names. The returned function
// releases it at shutdown.
func openStore(ctx context.Context, cfg config.Store, log *slog.Logger) (core.Backend, func() error, error) {
	switch cfg.Type {
	case config.StoreMemory:
		return memstore.New(memstore.Options{}), func() error { return nil }, nil
	case config.StoreEmbedded:
		s, err := pebblestore.Open(cfg.Path, pebblestore.Options{Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		return s, s.Close, nil
	case config.StoreAWS:
		s, err := awsconfig.Load(ctx, awsconfig.FromStore(cfg), awsstore.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		return s, func() error { return nil }, nil
	case config.StorePostgres:
		s, err := pgstore.Open(ctx, pgstore.Options{DSN: cfg.DSN, Schema: cfg.Schema, MaxConns: cfg.MaxConns, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		return s, s.Close, nil
	}
	return nil, nil, fmt.Errorf("store.type: unknown store type %q", cfg.Type)
}
