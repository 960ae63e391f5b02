package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// serveFloor is the "http-floor" system's server, run as a process of its
// own (peers -serve-floor ADDR): a queue in a channel behind net/http, with
// no auth, no JSON, no store. POST /enqueue?i=N appends job N; POST /next
// returns the next job's index, waiting up to 5s (204 when none came). It
// is no job system: it shows what one loopback HTTP round trip per wake
// costs on this machine, the floor under any HTTP pull worker.
func serveFloor(addr string) error {
	jobs := make(chan int, 1<<20)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /enqueue", func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.URL.Query().Get("i"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		jobs <- i
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /next", func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case i := <-jobs:
			_, _ = io.WriteString(w, strconv.Itoa(i))
		case <-t.C:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	})
	return http.ListenAndServe(addr, mux)
}

// runFloor runs the workload through serveFloor: Capacity worker
// goroutines each ask for the next job after returning from the last, so
// that a wake is one round trip to a server that does nothing.
func runFloor(ctx context.Context, w Workload, holds []time.Duration) (Result, error) {
	self, err := os.Executable()
	if err != nil {
		return Result{}, err
	}
	port, err := freePort()
	if err != nil {
		return Result{}, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(self, "-serve-floor", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	hc := httpClient(w.Capacity + w.Producers + 4)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		resp, err := hc.Get(base + "/ping")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > 10*time.Second {
			return Result{}, fmt.Errorf("http-floor: server not ready: %w", err)
		}
	}
	post := func(ctx context.Context, path string) (string, int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), resp.StatusCode, err
	}
	rec := NewRecorder(holds)
	cpu := startCPU(cmd.Process.Pid)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := func() error {
		for range w.Capacity {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for wctx.Err() == nil {
					body, status, err := post(wctx, "/next")
					if err != nil || status != http.StatusOK {
						if err != nil && wctx.Err() == nil {
							rec.Fail(fmt.Errorf("http-floor: next: %w", err))
							time.Sleep(50 * time.Millisecond)
						}
						continue
					}
					i, err := strconv.Atoi(body)
					if err != nil {
						rec.Fail(fmt.Errorf("http-floor: next answered %q", body))
						continue
					}
					hold(rec, i)
				}
			}()
		}
		return nil
	}
	err = enqueueAndWork(ctx, w, rec, start, func(ctx context.Context, i int) error {
		_, status, err := post(ctx, "/enqueue?i="+strconv.Itoa(i))
		if err == nil && status != http.StatusNoContent {
			err = fmt.Errorf("status %d", status)
		}
		return err
	})
	if err == nil {
		err = waitDone(ctx, rec)
	}
	res := rec.Result("http-floor")
	res.ServerCPUUS = cpu.perJob(w.Jobs)
	stop()
	wg.Wait()
	return res, err
}
