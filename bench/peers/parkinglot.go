package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

const (
	tenantToken = "bench-tenant"
	workerToken = "bench-worker"
	recipient   = "bench"
)

// plServer is a parkinglot server process of one run.
type plServer struct {
	url  string
	cmd  *exec.Cmd
	dir  string
	logs bytes.Buffer
}

// startParkinglot starts `parkinglot serve` on a free loopback port with
// one pool of the workload's capacity in executor mode (permit, pull, or
// push to an HTTP target at targetURL in sync mode) on store (memory or
// embedded), in a fresh data directory.
func startParkinglot(ctx context.Context, bin, store, executor, targetURL string, w Workload) (*plServer, error) {
	dir, err := os.MkdirTemp("", "parkinglot-peers-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	target := ""
	if executor == "push" {
		target = fmt.Sprintf(", target: {type: http, url: %q, mode: sync}", targetURL)
	}
	storeCfg := "{type: memory}"
	if store == "embedded" {
		storeCfg = fmt.Sprintf("{type: embedded, path: %q}", filepath.Join(dir, "data"))
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
store: %s
log: {level: warn}
auth:
  tokens:
    - {token: %s, tenant: bench}
    - {token: %s, role: worker, name: bench-worker, pools: [jobs]}
pools:
  - {name: jobs, capacity: %d, maxParked: %d, defaultMaxWait: 10m, runTimeout: 1m, executor: %s%s}
`, port, storeCfg, tenantToken, workerToken, w.Capacity, w.Jobs+100, executor, target)
	path := filepath.Join(dir, "parkinglot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	s := &plServer{url: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir}
	s.cmd = exec.Command(bin, "serve", "--config", path)
	s.cmd.Stdout, s.cmd.Stderr = &s.logs, &s.logs
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("parkinglot: start %s: %w", bin, err)
	}
	c, _ := client.New(s.url, tenantToken)
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Pool(pctx, "jobs")
		cancel()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("parkinglot: server not ready: %w\n%s", err, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *plServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// httpClient keeps enough idle connections per host for every concurrent
// caller of one process (Go's default keeps 2).
func httpClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns
	t.MaxIdleConnsPerHost = conns
	return &http.Client{Transport: t}
}

// runParkinglot runs the workload through a parkinglot server process.
// Permit mode: producers submit to recipient "bench"; one mailbox reader
// long-polls it and runs each started task in a goroutine of its own,
// which completes the task with its lease (the server's capacity bounds
// them to Capacity at once). Pull mode: pkg/worker.Run with Concurrency =
// capacity claims the tasks. Push mode: the server POSTs each start to a
// target in this process (pkg/worker.HTTPHandler, sync mode), whose answer
// completes the task; the target holds every push until the workers start.
func runParkinglot(ctx context.Context, w Workload, holds []time.Duration, bin, store, executor string, defaultTransport bool) (Result, error) {
	name := "parkinglot-" + executor + "-" + store
	if defaultTransport {
		name += "-defaulthttp"
	}
	rec := NewRecorder(holds)
	targetURL, gate, stopTarget, err := startTarget(rec)
	if err != nil {
		return Result{}, err
	}
	defer stopTarget()
	srv, err := startParkinglot(ctx, bin, store, executor, targetURL, w)
	if err != nil {
		return Result{}, err
	}
	defer srv.stop()
	var rtts []*rttTransport
	newClient := func(token string, conns int) *client.Client {
		hc := &http.Client{Transport: http.DefaultTransport}
		if !defaultTransport {
			hc = httpClient(conns)
		}
		rtt := newRTT(hc.Transport)
		rtts = append(rtts, rtt)
		hc.Transport = rtt
		c, _ := client.New(srv.url, token, client.WithHTTPClient(hc))
		return c
	}
	producers := newClient(tenantToken, w.Producers+4)
	cpu := startCPU(srv.cmd.Process.Pid)

	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := func() error {
		switch executor {
		case "pull":
			wc := newClient(workerToken, w.Capacity+4)
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := worker.Run(wctx, wc, worker.Options{Pool: "jobs", Concurrency: w.Capacity, ClaimWait: 5 * time.Second, ShutdownTimeout: 10 * time.Second},
					func(ctx context.Context, t *worker.Task) (any, error) {
						var j jobPayload
						if err := t.Decode(&j); err != nil {
							rec.Fail(err)
							return nil, err
						}
						hold(rec, j.I)
						return nil, nil
					})
				if err != nil {
					rec.Fail(fmt.Errorf("worker.Run: %w", err))
				}
			}()
		case "push":
			close(gate)
		case "permit":
			mc := newClient(tenantToken, w.Capacity+4)
			wg.Add(1)
			go func() {
				defer wg.Done()
				permitWorkers(wctx, mc, rec, &wg)
			}()
		default:
			return fmt.Errorf("unknown executor %q", executor)
		}
		return nil
	}
	err = enqueueAndWork(ctx, w, rec, start, func(ctx context.Context, i int) error {
		_, err := producers.Submit(ctx, "jobs", api.SubmitRequest{Recipient: recipient, Payload: payload(i)})
		return err
	})
	if err == nil {
		err = waitDone(ctx, rec)
	}
	res := rec.Result(name)
	res.ServerCPUUS = cpu.perJob(w.Jobs)
	stopWorkers()
	wg.Wait()
	res.RTT = map[string][3]time.Duration{}
	for _, t := range rtts {
		for k, v := range t.summary() {
			if k == "submit" || k == "complete" || k == "claim" {
				res.RTT[k] = v
			}
		}
	}
	return res, err
}

// startTarget serves a push pool's HTTP target on a free loopback port:
// each push waits for gate to close, then holds its job's slot and answers
// (the task's outcome). It returns the target's URL, the gate, and a stop.
func startTarget(rec *Recorder) (string, chan struct{}, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	gate := make(chan struct{})
	srv := &http.Server{Handler: worker.HTTPHandler("", func(ctx context.Context, t *worker.Task) (any, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var j jobPayload
		if err := t.Decode(&j); err != nil {
			rec.Fail(err)
			return nil, err
		}
		hold(rec, j.I)
		return nil, nil
	})}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String() + "/", gate, func() { _ = srv.Close() }, nil
}

// permitWorkers reads recipient's mailbox and runs each started task.
func permitWorkers(ctx context.Context, c *client.Client, rec *Recorder, wg *sync.WaitGroup) {
	acks := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for upTo := range acks {
			if err := c.Ack(ctx, recipient, upTo); err != nil && ctx.Err() == nil {
				rec.Fail(fmt.Errorf("ack: %w", err))
			}
		}
	}()
	defer close(acks)
	after := ""
	for ctx.Err() == nil {
		page, err := c.Mailbox(ctx, recipient, client.MailboxOptions{After: after, Limit: 1000, Wait: 5 * time.Second})
		if err != nil {
			if ctx.Err() == nil {
				rec.Fail(fmt.Errorf("mailbox: %w", err))
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		for _, m := range page.Messages {
			if m.Type != "started" {
				continue
			}
			i, err := decodeIndex(m.Payload)
			if err != nil {
				rec.Fail(err)
				continue
			}
			wg.Add(1)
			go func(id, lease string) {
				defer wg.Done()
				hold(rec, i)
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				if _, err := c.Complete(cctx, id, api.CompleteRequest{Lease: lease, Status: "succeeded"}); err != nil {
					rec.Fail(fmt.Errorf("complete %s: %w", id, err))
				}
			}(m.TaskID, m.Lease)
		}
		if len(page.Messages) > 0 {
			after = page.Next
			select { // the latest cursor wins
			case acks <- after:
			default:
				select {
				case <-acks:
				default:
				}
				acks <- after
			}
		}
	}
}

var errUnknownSystem = errors.New("unknown system")
