// Command peers runs one workload through Parkinglot and through the job
// systems users compare it with, asynq on Redis and River on PostgreSQL,
// and prints lifecycles/s, enqueue/s and wake latency, each the median of
// interleaved runs, measured with this process's own clock.
//
// run.sh starts Redis and PostgreSQL on loopback, builds the parkinglot
// binary and runs this command; see docs/benchmarks.md ("Side by side with
// the peers").
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

var allSystems = []string{
	"asynq", "river-tuned",
	"parkinglot-permit-memory", "parkinglot-permit-embedded",
	"parkinglot-pull-memory", "parkinglot-pull-embedded",
	"parkinglot-push-memory", "parkinglot-push-embedded",
}

func main() {
	var (
		w        Workload
		runs     = flag.Int("runs", 3, "interleaved runs of every system; each figure is the median")
		systems  = flag.String("systems", strings.Join(allSystems, ","), "comma-separated systems to run, in this order each round; also: river (River's default fetch settings), parkinglot-pull-memory-defaulthttp (pkg/client's default HTTP client), http-floor (a no-op job server over HTTP: one loopback round trip per wake)")
		redis    = flag.String("redis", "127.0.0.1:6379", "Redis address for asynq")
		pg       = flag.String("pg", "", "PostgreSQL URL for River (a database River may own)")
		bin      = flag.String("parkinglot", "", "the parkinglot binary (its server runs one process per run)")
		timeout  = flag.Duration("timeout", 5*time.Minute, "bound of one run")
		jsonOut  = flag.String("json", "", "also write every run's result to this file")
		redisPID = flag.Int("redis-pid", 0, "Redis's process id, to report its CPU time per job")
		pgPID    = flag.Int("pg-pid", 0, "PostgreSQL's postmaster process id, to report the CPU time of its processes per job")
	)
	flag.IntVar(&w.Jobs, "jobs", 5000, "jobs per run")
	flag.IntVar(&w.Producers, "producers", 4, "concurrent producers, one enqueue call per job")
	flag.IntVar(&w.Capacity, "capacity", 16, "the queue's concurrency cap")
	flag.Uint64Var(&w.Seed, "seed", 1, "seed of the jobs' hold times")
	flag.DurationVar(&w.MinHold, "min-hold", time.Millisecond, "shortest hold")
	flag.DurationVar(&w.MaxHold, "max-hold", 15*time.Millisecond, "longest hold")
	serveFloorAddr := flag.String("serve-floor", "", "serve the http-floor system's queue on this address (the harness starts it so)")
	flag.BoolVar(&w.Preload, "preload", false, "enqueue every job before the workers start (a backlog), instead of while they run")
	flag.Parse()
	if *serveFloorAddr != "" {
		fmt.Fprintln(os.Stderr, "peers: http-floor:", serveFloor(*serveFloorAddr))
		os.Exit(1)
	}
	names := strings.Split(*systems, ",")
	for _, n := range names {
		if _, err := systemFunc(n, *redis, *pg, *bin, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			os.Exit(2)
		}
	}
	ctx := context.Background()
	if *pg != "" && slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "river") }) {
		if err := riverMigrate(ctx, *pg); err != nil {
			fmt.Fprintln(os.Stderr, "peers: river migrate:", err)
			os.Exit(1)
		}
	}
	holds := w.Holds()
	var sum time.Duration
	for _, h := range holds {
		sum += h
	}
	mode := "enqueued while the workers run"
	if w.Preload {
		mode = "all enqueued before the workers start"
	}
	fmt.Printf("workload: %d jobs (%s), %d producers, capacity %d, hold %s-%s (mean %s, seed %d): at most %.0f lifecycles/s\n",
		w.Jobs, mode, w.Producers, w.Capacity, w.MinHold, w.MaxHold, sum/time.Duration(len(holds)), w.Seed,
		float64(w.Capacity)*float64(len(holds))/sum.Seconds())
	results := map[string][]Result{}
	var all []Result
	failed := false
	for r := range *runs {
		for _, n := range names {
			f, _ := systemFunc(n, *redis, *pg, *bin, *redisPID, *pgPID)
			rctx, cancel := context.WithTimeout(ctx, *timeout)
			var fsync [3]time.Duration
			if strings.Contains(n, "-embedded") {
				fsync, _ = fsyncProbe(os.TempDir(), 200)
			}
			busy0, ru0 := cpuBusy(), rusage()
			res, err := f(rctx, w, holds)
			cancel()
			res.System = n
			res.Fsync = fsync
			res.CPUBusy = busyFraction(busy0, cpuBusy())
			res.HarnessCPU = float64((rusage() - ru0).Microseconds()) / float64(w.Jobs)
			if err != nil {
				res.Errors = append(res.Errors, err)
			}
			printRun(os.Stdout, r+1, res)
			if len(res.Errors) > 0 || res.Doubles > 0 || res.Missing > 0 || res.MaxRunning > w.Capacity {
				failed = true
			}
			results[n] = append(results[n], res)
			all = append(all, res)
			time.Sleep(time.Second) // let the previous system's processes settle
		}
	}
	fmt.Println()
	fmt.Printf("medians of %d interleaved runs:\n\n", *runs)
	printTable(os.Stdout, names, results)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(all, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
		}
	}
	if failed {
		fmt.Fprintln(os.Stderr, "peers: some runs had errors, lost or duplicated jobs, or exceeded the capacity (see above)")
		os.Exit(1)
	}
}

type systemRun func(ctx context.Context, w Workload, holds []time.Duration) (Result, error)

func systemFunc(name, redis, pg, bin string, redisPID, pgPID int) (systemRun, error) {
	switch name {
	case "asynq":
		return func(ctx context.Context, w Workload, h []time.Duration) (Result, error) {
			return runAsynq(ctx, w, h, redis, redisPID)
		}, nil
	case "http-floor":
		return runFloor, nil
	case "river", "river-tuned":
		if pg == "" {
			return nil, fmt.Errorf("%s needs -pg", name)
		}
		tuned := name == "river-tuned"
		return func(ctx context.Context, w Workload, h []time.Duration) (Result, error) {
			return runRiver(ctx, w, h, pg, tuned, pgPID)
		}, nil
	}
	if rest, ok := strings.CutPrefix(name, "parkinglot-"); ok {
		if bin == "" {
			return nil, fmt.Errorf("%s needs -parkinglot", name)
		}
		parts := strings.Split(rest, "-")
		if len(parts) >= 2 && (parts[0] == "permit" || parts[0] == "pull" || parts[0] == "push") && (parts[1] == "memory" || parts[1] == "embedded") &&
			(len(parts) == 2 || len(parts) == 3 && parts[2] == "defaulthttp") {
			executor, store, def := parts[0], parts[1], len(parts) == 3
			return func(ctx context.Context, w Workload, h []time.Duration) (Result, error) {
				return runParkinglot(ctx, w, h, bin, store, executor, def)
			}, nil
		}
	}
	return nil, fmt.Errorf("%w %q (known: %s)", errUnknownSystem, name, strings.Join(allSystems, ", "))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func printRun(out io.Writer, run int, r Result) {
	fmt.Fprintf(out, "run %d %-28s lifecycles/s %7.0f  enqueue/s %7.0f  wake p50 %s p95 %s p99 %s (%d wakes)  max running %d  cpu busy %3.0f%%  server cpu %4.0f µs/job  harness cpu %4.0f µs/job",
		run, r.System, r.Lifecycles, r.Enqueue, ms(r.Wake[0]), ms(r.Wake[1]), ms(r.Wake[2]), r.Wakes, r.MaxRunning, 100*r.CPUBusy, r.ServerCPUUS, r.HarnessCPU)
	if r.Doubles > 0 || r.Missing > 0 {
		fmt.Fprintf(out, "  DOUBLES %d MISSING %d", r.Doubles, r.Missing)
	}
	fmt.Fprintln(out)
	if len(r.RTT) > 0 {
		fmt.Fprint(out, "     round trips p50/p95/p99:")
		for _, k := range []string{"submit", "complete", "claim"} {
			if v, ok := r.RTT[k]; ok {
				fmt.Fprintf(out, "  %s %s / %s / %s", k, ms(v[0]), ms(v[1]), ms(v[2]))
			}
		}
		if r.Fsync[0] > 0 {
			fmt.Fprintf(out, "  (fdatasync just before: %s / %s / %s)", ms(r.Fsync[0]), ms(r.Fsync[1]), ms(r.Fsync[2]))
		}
		fmt.Fprintln(out)
	}
	for _, err := range r.Errors {
		fmt.Fprintf(out, "    error: %v\n", err)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianOf(rs []Result, f func(Result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return median(xs)
}

func printTable(out io.Writer, names []string, results map[string][]Result) {
	fmt.Fprintln(out, "| system | lifecycles/s | wake p50 | p95 | p99 | enqueue/s |")
	fmt.Fprintln(out, "| --- | --- | --- | --- | --- | --- |")
	for _, n := range names {
		rs := results[n]
		wake := func(k int) string {
			return ms(time.Duration(medianOf(rs, func(r Result) float64 { return float64(r.Wake[k]) })))
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", n,
			thousands(medianOf(rs, func(r Result) float64 { return r.Lifecycles })),
			wake(0), wake(1), wake(2),
			thousands(medianOf(rs, func(r Result) float64 { return r.Enqueue })))
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| system | machine busy | server CPU µs/job | harness CPU µs/job |")
	fmt.Fprintln(out, "| --- | --- | --- | --- |")
	for _, n := range names {
		rs := results[n]
		var known []Result
		for _, r := range rs {
			if r.ServerCPUUS >= 0 {
				known = append(known, r)
			}
		}
		fmt.Fprintf(out, "| %s | %.0f%% | %.0f | %.0f |\n", n,
			100*medianOf(rs, func(r Result) float64 { return r.CPUBusy }),
			medianOf(known, func(r Result) float64 { return r.ServerCPUUS }),
			medianOf(rs, func(r Result) float64 { return r.HarnessCPU }))
	}
}

func thousands(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// cpuBusy returns the machine's busy and total jiffies from /proc/stat.
func cpuBusy() [2]uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return [2]uint64{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy, total uint64
	for k, f := range strings.Fields(line)[1:] {
		var v uint64
		fmt.Sscan(f, &v)
		total += v
		if k != 3 && k != 4 { // idle, iowait
			busy += v
		}
	}
	return [2]uint64{busy, total}
}

func busyFraction(a, b [2]uint64) float64 {
	if b[1] <= a[1] {
		return 0
	}
	return float64(b[0]-a[0]) / float64(b[1]-a[1])
}

// rusage returns this process's CPU time so far.
func rusage() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
