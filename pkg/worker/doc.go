// Package worker runs a handler for the tasks of a pull pool: it claims
// tasks with the worker's token, runs each in the handler, heartbeats its
// lease, and completes it with the handler's result, asking for the next
// task in the same call, so that a busy worker makes one round trip per
// task.
//
//	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("PARKINGLOT_TOKEN"))
//	err := worker.Run(ctx, c, worker.Options{Pool: "render", Concurrency: 4},
//		func(ctx context.Context, t *worker.Task) (any, error) {
//			var job Job
//			if err := t.Decode(&job); err != nil {
//				return nil, err
//			}
//			return render(ctx, job)
//		})
//
// The pool's capacity holds across every worker process: Concurrency only
// bounds how many tasks this process runs at once. A handler's error (or
// panic) completes its task as failed; its context ends when the task's
// lease is lost (the server reclaimed it, or it was cancelled), and then
// its result is dropped. When Run's context ends, Run stops claiming and
// waits up to ShutdownTimeout for the running handlers; the tasks of those
// still running then are left to lease expiry.
package worker
