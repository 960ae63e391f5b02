package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"golang.org/x/term"

	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/internal/metrics"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/core"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `file` (YAML); default: the built-in sample")
	printSample := fs.Bool("print-sample", false, "print the built-in sample configuration and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: parkinglot serve [--config FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "parkinglot serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *printSample {
		fmt.Fprint(stdout, config.Sample)
		return exitOK
	}

	var cfg config.Config
	var err error
	source := "built-in sample"
	if *path != "" {
		source = *path
		cfg, err = config.Load(*path)
	} else {
		cfg, err = config.Parse([]byte(config.Sample))
	}
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot serve: %v\n", err)
		return exitUsage
	}
	log := newLogger(cfg.Log, stderr)
	var hint io.Writer // a newcomer on the sample config is told what to try
	if *path == "" {
		hint = stderr
	}
	if err := runServer(ctx, cfg, source, log, hint); err != nil {
		log.Error("server failed", "err", err)
		return exitOther
	}
	log.Info("stopped")
	return exitOK
}

// newLogger logs text on a terminal and JSON otherwise, unless cfg says.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Format
	if format == config.LogAuto {
		format = config.LogJSON
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = config.LogText
		}
	}
	if format == config.LogText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// runServer serves until ctx is done, then shuts down gracefully: it stops
// accepting, ends mailbox long polls, drains in-flight requests for up to
// cfg.ShutdownTimeout, stops the sweeper and closes the store.
func runServer(ctx context.Context, cfg config.Config, source string, log *slog.Logger, hint io.Writer) (err error) {
	backend, closeStore, err := openStore(ctx, cfg.Store, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeStore(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
	}()

	obs := metrics.NewObserver()
	pusher, err := newPusher(ctx, cfg, log, obs.Pushed)
	if err != nil {
		return err
	}
	ccfg := core.Config{Backend: backend, Logger: log, Observer: obs, MailboxPoll: cfg.MailboxPoll}
	if pusher != nil {
		ccfg.Pusher = pusher
		// Deliveries under way record their attempts before the store
		// closes, for up to shutdownTimeout; what is left pending is the
		// next sweep's.
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			pusher.Shutdown(sctx)
		}()
	}
	sched, err := core.New(ccfg)
	if err != nil {
		return err
	}
	if pusher != nil {
		pusher.Bind(sched)
	}
	names := make([]string, len(cfg.Pools))
	for i, p := range cfg.Pools {
		if err := sched.PutPool(ctx, p.Core()); err != nil {
			return fmt.Errorf("pools[%d] %s: %w", i, p.Name, err)
		}
		names[i] = fmt.Sprintf("%s(capacity %d)", p.Name, p.Capacity)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(obs, metrics.NewPoolCollector(sched, 5*time.Second),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Long polls end at once when shutdown starts, with an empty page.
	draining, stopPolls := context.WithCancel(context.Background())
	defer stopPolls()
	auth := httpapi.NewIdentityAuth(identities(cfg.Auth))
	if cfg.Auth.Anonymous {
		auth = anyClient{}
	}
	api := httpapi.New(httpapi.Options{Scheduler: sched, Auth: auth, Logger: log})
	sweeper := func(ctx context.Context) { sweep(ctx, sched, cfg.SweepInterval, log) }
	if cfg.ResultsQueue != "" && pusher == nil {
		log.Warn("resultsQueue is set but no pool pushes: the queue is not read", "resultsQueue", cfg.ResultsQueue)
	}
	if cfg.ResultsQueue != "" && pusher != nil {
		// Results of lambda targets (their destination) and of sqs targets'
		// workers arrive on the results queue.
		q, err := resultsClient(ctx, cfg)
		if err != nil {
			return err
		}
		sweepOnly := sweeper
		sweeper = func(ctx context.Context) {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = pusher.ConsumeResults(ctx, q, cfg.ResultsQueue, push.ConsumeOptions{})
			}()
			sweepOnly(ctx)
			wg.Wait()
		}
	}
	if cfg.Runtime == config.RuntimeLambda {
		if api, sweeper, err = lambdaRuntime(cfg, backend, obs, log); err != nil {
			return err
		}
		api = refuseUnknownTokens(cfg.Auth.TokenMap(), api)
	}
	version := readBuildInfo()
	healthz := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Err() != nil {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		version.write(w)
	})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parkinglot", Name: "http_requests_in_flight",
		Help: "API requests being served, mailbox long polls included.",
	})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parkinglot", Name: "http_requests_total",
		Help: "API requests served, by status code and method.",
	}, []string{"code", "method"})
	reg.MustRegister(inFlight, requests)
	apiHandler := longPollDeadlines(cfg.WriteTimeout, promhttp.InstrumentHandlerInFlight(inFlight,
		promhttp.InstrumentHandlerCounter(requests, endLongPolls(draining, api))))
	var metricsHandler http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if cfg.Metrics.Token != "" {
		metricsHandler = requireToken(cfg.Metrics.Token, metricsHandler)
	}

	// The API's listener, and /metrics' own if it has one; each serves at
	// most cfg.MaxConnections connections at once.
	var servers []*http.Server
	var listeners []net.Listener
	defer func() {
		for _, ln := range listeners {
			_ = ln.Close() // after Serve, already closed
		}
	}()
	listen := func(addr string, h http.Handler) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		// net/http's own error answers (a request it cannot parse) in the
		// API's JSON error body, like every other answer.
		ln = httpapi.Listener(netutil.LimitListener(ln, cfg.MaxConnections))
		listeners = append(listeners, ln)
		servers = append(servers, newHTTPServer(cfg, h, log))
		return ln, nil
	}
	var ln, metricsLn net.Listener
	if cfg.Metrics.Listen == "" {
		ln, err = listen(cfg.Listen, routes(apiHandler, healthz, metricsHandler))
	} else {
		ln, err = listen(cfg.Listen, routes(apiHandler, healthz, nil))
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	metricsAddr := "http://" + ln.Addr().String() + "/metrics"
	if cfg.Metrics.Listen != "" {
		if metricsLn, err = listen(cfg.Metrics.Listen, metricsOnly(metricsHandler)); err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		metricsAddr = "http://" + metricsLn.Addr().String() + "/metrics"
	}
	switch {
	case cfg.Auth.Anonymous:
		log.Warn(`auth.anonymous: serving every client, from any address, as tenant "default" without a token`)
	case len(cfg.Auth.Tokens) == 0:
		log.Warn(`no auth tokens configured: accepting loopback clients only, all as tenant "default"`)
	default:
		log.Info("bearer token auth", "tokens", len(cfg.Auth.Tokens))
	}
	exposed := ln
	if metricsLn != nil {
		exposed = metricsLn
	}
	if cfg.Metrics.Token == "" && !isLoopbackListener(exposed) {
		log.Warn("/metrics is served without a token on an address that other hosts can reach; metrics.token requires one",
			"metrics", metricsAddr)
	}
	// Logged last: it tells scripts and tests that the server is up.
	log.Info("parkinglot listening", "addr", "http://"+ln.Addr().String(), "metrics", metricsAddr,
		"runtime", cfg.Runtime, "store", cfg.Store.Type, "config", source, "pools", strings.Join(names, ", "),
		"sweepInterval", cfg.SweepInterval.String(), "version", version.Version)
	if hint != nil {
		firstTaskHint(hint, "http://"+ln.Addr().String(), cfg)
	}

	sweepCtx, stopSweeper := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sweeper(sweepCtx)
	}()
	defer func() {
		stopSweeper()
		wg.Wait()
	}()

	served := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { served <- srv.Serve(listeners[i]) }()
	}

	select {
	case err := <-served:
		for _, srv := range servers {
			_ = srv.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "drainTimeout", cfg.ShutdownTimeout.String())
	stopPolls()
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutCtx); err != nil {
			for _, srv := range servers {
				_ = srv.Close()
			}
			return fmt.Errorf("drain requests: %w", err)
		}
	}
	for range servers {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	return nil // the deferred calls stop the sweeper, then close the store
}

// readHeaderTimeout bounds the reading of a request's headers, within
// config.Config.ReadTimeout.
const readHeaderTimeout = 10 * time.Second

// newHTTPServer returns a server of h with cfg's timeouts.
func newHTTPServer(cfg config.Config, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(readHeaderTimeout, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// isLoopbackListener reports whether ln accepts connections from this host
// alone.
func isLoopbackListener(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// routes serves GET /healthz and GET /metrics itself and everything else
// with the API handler, which answers unknown paths with its JSON 404. No
// http.ServeMux: it would redirect uncleaned paths instead. With a nil
// metrics, /metrics is the API's too (a 404): it is served elsewhere.
func routes(api, healthz, metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			getOnly(healthz).ServeHTTP(w, r)
		case r.URL.Path == "/metrics" && metrics != nil:
			getOnly(metrics).ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// metricsOnly serves GET /metrics and nothing else, on the metrics
// listener.
func metricsOnly(metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		getOnly(metrics).ServeHTTP(w, r)
	})
}

// getOnly answers 405 to methods other than GET and HEAD.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLongPoll reports whether r is a mailbox read, which may wait up to
// core.MaxMailboxWait for messages.
func isLongPoll(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/mailbox/")
}

// longPollDeadlines gives mailbox long polls their own bound: the write
// timeout on top of the longest wait, where the server gives every other
// request the write timeout alone. The read deadline moves with it, for
// net/http cancels a request's context when its connection's read deadline
// passes, even after the request was read. Only a request without a body
// gets them, so that no body is read under the longer bound.
func longPollDeadlines(writeTimeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isLongPoll(r) && r.ContentLength == 0 {
			end := time.Now().Add(core.MaxMailboxWait + writeTimeout)
			rc := http.NewResponseController(w)
			// Unsupported only by writers that are not a connection's,
			// which have no deadline to move.
			if rc.SetReadDeadline(end) == nil {
				_ = rc.SetWriteDeadline(end)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// endLongPolls ends mailbox reads when draining is done, so that a long
// poll does not hold the shutdown for its full wait. Other requests keep
// their own context and drain normally.
func endLongPolls(draining context.Context, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLongPoll(r) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(draining, cancel)
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// sweep runs the scheduler's sweeper every interval until ctx is done.
func sweep(ctx context.Context, s *core.Scheduler, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("sweep failed; retrying at the next tick", "err", err)
		}
		if st != (core.SweepStats{}) {
			log.Debug("sweep", "expired", st.Expired, "timedOut", st.TimedOut, "resent", st.Resent, "pushed", st.Pushed, "reconciled", st.Reconciled, "started", st.Started, "purged", st.Purged)
		}
	}
}

// firstTaskHint tells a newcomer on the built-in sample config how to submit
// a first task and follow it.
func firstTaskHint(w io.Writer, url string, cfg config.Config) {
	auth := ""
	if len(cfg.Auth.Tokens) > 0 {
		auth = fmt.Sprintf(" -H 'Authorization: Bearer %s'", cfg.Auth.Tokens[0].Token)
	}
	recipient := "default"
	if len(cfg.Auth.Tokens) > 0 {
		recipient = cfg.Auth.Tokens[0].Tenant
	}
	fmt.Fprintf(w, `
Submit a first task, then read its started message (with the lease) from the mailbox:
  curl -s%[2]s -X POST %[1]s/v1/pools/%[3]s/tasks -d '{"payload": {"hello": "world"}}'
  curl -s%[2]s '%[1]s/v1/mailbox/%[4]s?wait=5s'
Complete it with the lease from that message, and read its outcome:
  curl -s%[2]s -X POST %[1]s/v1/tasks/TASK_ID/complete -d '{"lease": "LEASE", "status": "succeeded"}'
  curl -s%[2]s '%[1]s/v1/mailbox/%[4]s'

`, url, auth, cfg.Pools[0].Name, recipient)
}
