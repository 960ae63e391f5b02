package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// runAsynq runs the workload through asynq on Redis: its default server
// with Concurrency = capacity on one queue, producers calling Enqueue once
// per job.
func runAsynq(ctx context.Context, w Workload, holds []time.Duration, addr string) (Result, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return Result{}, fmt.Errorf("asynq: flush redis at %s: %w", addr, err)
	}
	opt := asynq.RedisClientOpt{Addr: addr}
	rec := NewRecorder(holds)
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: w.Capacity,
		Queues:      map[string]int{"default": 1},
		LogLevel:    asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("job", func(ctx context.Context, t *asynq.Task) error {
		var j jobPayload
		if err := json.Unmarshal(t.Payload(), &j); err != nil {
			return err
		}
		hold(rec, j.I)
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return Result{}, fmt.Errorf("asynq: start server: %w", err)
	}
	defer srv.Shutdown()

	client := asynq.NewClient(opt)
	defer client.Close()
	produce(ctx, w, rec, func(ctx context.Context, i int) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("job", payload(i)))
		return err
	})
	if err := waitDone(ctx, rec); err != nil {
		return rec.Result("asynq"), err
	}
	return rec.Result("asynq"), nil
}
