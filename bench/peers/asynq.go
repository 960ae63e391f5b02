package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// runAsynq runs the workload through asynq on Redis: its default server
// with Concurrency = capacity on one queue, producers calling Enqueue once
// per job.
func runAsynq(ctx context.Context, w Workload, holds []time.Duration, addr string, redisPID int) (Result, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return Result{}, fmt.Errorf("asynq: flush redis at %s: %w", addr, err)
	}
	opt := asynq.RedisClientOpt{Addr: addr}
	rec := NewRecorder(holds)
	cpu := startCPU(redisPID)
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: w.Capacity,
		Queues:      map[string]int{"default": 1},
		LogLevel:    asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("job", func(ctx context.Context, t *asynq.Task) error {
		i, err := decodeIndex(t.Payload())
		if err != nil {
			rec.Fail(err)
			return err
		}
		hold(rec, i)
		return nil
	})
	defer srv.Shutdown()
	client := asynq.NewClient(opt)
	defer client.Close()
	start := func() error {
		if err := srv.Start(mux); err != nil {
			return fmt.Errorf("asynq: start server: %w", err)
		}
		return nil
	}
	if err := enqueueAndWork(ctx, w, rec, start, func(ctx context.Context, i int) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("job", payload(i)))
		return err
	}); err != nil {
		return Result{}, err
	}
	err := waitDone(ctx, rec)
	res := rec.Result("asynq")
	res.ServerCPUUS = cpu.perJob(w.Jobs)
	return res, err
}
