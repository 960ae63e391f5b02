package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

type riverJob struct {
	I int `json:"i"`
}

func (riverJob) Kind() string { return "job" }

type riverWorker struct {
	river.WorkerDefaults[riverJob]
	rec *Recorder
}

func (w *riverWorker) Work(ctx context.Context, j *river.Job[riverJob]) error {
	hold(w.rec, j.Args.I)
	return nil
}

// riverMigrate creates River's tables in the database at url.
func riverMigrate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}

// runRiver runs the workload through River on PostgreSQL: one queue with
// MaxWorkers = capacity, producers calling Insert once per job. tuned sets
// FetchCooldown and FetchPollInterval to River's minimum, 1ms (defaults:
// 100ms and 1s).
func runRiver(ctx context.Context, w Workload, holds []time.Duration, url string, tuned bool, pgPID int) (Result, error) {
	name := "river"
	if tuned {
		name = "river-tuned"
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return Result{}, fmt.Errorf("river: connect: %w", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "TRUNCATE river_job"); err != nil {
		return Result{}, fmt.Errorf("river: truncate river_job: %w", err)
	}
	rec := NewRecorder(holds)
	cpu := startCPU(pgPID)
	workers := river.NewWorkers()
	river.AddWorker(workers, &riverWorker{rec: rec})
	cfg := &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: w.Capacity}},
		Workers: workers,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tuned {
		cfg.FetchCooldown = time.Millisecond
		cfg.FetchPollInterval = time.Millisecond
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return Result{}, fmt.Errorf("river: client: %w", err)
	}
	started := false
	defer func() {
		if started {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = client.Stop(sctx)
		}
	}()
	start := func() error {
		if err := client.Start(ctx); err != nil {
			return fmt.Errorf("river: start: %w", err)
		}
		started = true
		return nil
	}
	if err := enqueueAndWork(ctx, w, rec, start, func(ctx context.Context, i int) error {
		_, err := client.Insert(ctx, riverJob{I: i}, nil)
		return err
	}); err != nil {
		return Result{}, err
	}
	err = waitDone(ctx, rec)
	res := rec.Result(name)
	res.ServerCPUUS = cpu.perJob(w.Jobs)
	return res, err
}
