package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// jobPayload is every system's job: its index into the workload.
type jobPayload struct {
	I int `json:"i"`
}

func payload(i int) []byte { return []byte(`{"i":` + strconv.Itoa(i) + `}`) }

func decodeIndex(b []byte) (int, error) {
	var j jobPayload
	if err := json.Unmarshal(b, &j); err != nil {
		return 0, fmt.Errorf("job payload %q: %w", b, err)
	}
	return j.I, nil
}

// hold is every system's handler body: enter, hold the slot, return.
func hold(rec *Recorder, i int) {
	d := rec.Enter(i)
	time.Sleep(d)
	rec.Return(i)
}

// produce enqueues jobs 0..Jobs-1 from w.Producers goroutines, one call
// per job, job i by producer i mod Producers, and returns when all calls
// returned.
func produce(ctx context.Context, w Workload, rec *Recorder, enqueue func(ctx context.Context, i int) error) {
	var wg sync.WaitGroup
	for p := range w.Producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < w.Jobs; i += w.Producers {
				if ctx.Err() != nil {
					return
				}
				rec.EnqueueStarted()
				if err := enqueue(ctx, i); err != nil {
					rec.Fail(fmt.Errorf("enqueue job %d: %w", i, err))
					continue
				}
				rec.Enqueued(i)
			}
		}()
	}
	wg.Wait()
}

// waitDone waits until every job returned once, or ctx ends.
func waitDone(ctx context.Context, rec *Recorder) error {
	select {
	case <-rec.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("not every job ran before the run's timeout: %w", ctx.Err())
	}
}

// enqueueAndWork starts the workers and runs the producers, in the
// workload's order: workers first (enqueue and work overlap), or the
// producers first when w.Preload.
func enqueueAndWork(ctx context.Context, w Workload, rec *Recorder, start func() error, enqueue func(ctx context.Context, i int) error) error {
	if !w.Preload {
		if err := start(); err != nil {
			return err
		}
	}
	produce(ctx, w, rec, enqueue)
	if w.Preload {
		return start()
	}
	return nil
}
