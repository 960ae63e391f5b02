package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Workload is what every system runs: Jobs jobs into one queue capped at
// Capacity, each holding its slot for Hold(i), enqueued by Producers, one
// call per job.
type Workload struct {
	Jobs      int
	Producers int
	Capacity  int
	Seed      uint64
	MinHold   time.Duration
	MaxHold   time.Duration
	// Preload enqueues every job before the workers start: the backlog
	// regime, where the enqueue rate no longer bounds the workers.
	Preload bool
}

// Holds returns each job's hold time, seeded: the same for every system.
func (w Workload) Holds() []time.Duration {
	r := rand.New(rand.NewPCG(w.Seed, 0x9e3779b97f4a7c15))
	holds := make([]time.Duration, w.Jobs)
	span := int64(w.MaxHold - w.MinHold)
	for i := range holds {
		holds[i] = w.MinHold + time.Duration(r.Int64N(span+1))
	}
	return holds
}

// Recorder keeps the harness's own clock for one run. Every system's
// producers call Enqueued after each enqueue call returns, and its workers
// call Enter when a job's handler starts and Return when it returns.
//
// Wake latency: a Return while enqueued work is waiting (enqueued, not yet
// entered, and not already promised to an earlier Return) opens a wake; the
// next Enter closes the oldest open wake. Their difference is the time from
// a worker's slot freeing to the next job running in a worker, whatever the
// system does in between (mark done, fetch, hand off).
type Recorder struct {
	t0    time.Time
	holds []time.Duration

	mu        sync.Mutex
	enqueued  []bool
	entered   []int // entries per job (more than 1: a job ran twice)
	waiting   int   // enqueued and not entered
	open      []time.Duration
	wakes     []time.Duration
	running   int
	maxRun    int
	returned  int
	firstEnq  time.Duration
	lastEnq   time.Duration
	firstIn   time.Duration
	lastOut   time.Duration
	enqCalls  int
	doubles   int
	done      chan struct{}
	errs      []error
	closeOnce sync.Once
}

// NewRecorder starts a run's clock.
func NewRecorder(holds []time.Duration) *Recorder {
	return &Recorder{
		t0: time.Now(), holds: holds,
		enqueued: make([]bool, len(holds)), entered: make([]int, len(holds)),
		firstEnq: -1, firstIn: -1, done: make(chan struct{}),
	}
}

func (r *Recorder) now() time.Duration { return time.Since(r.t0) }

// EnqueueStarted marks the start of an enqueue call (for enqueue/s).
func (r *Recorder) EnqueueStarted() {
	t := r.now()
	r.mu.Lock()
	if r.firstEnq < 0 || t < r.firstEnq {
		r.firstEnq = t
	}
	r.mu.Unlock()
}

// Enqueued marks job i's enqueue call as returned.
func (r *Recorder) Enqueued(i int) {
	t := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enqCalls++
	if t > r.lastEnq {
		r.lastEnq = t
	}
	if r.enqueued[i] {
		return
	}
	r.enqueued[i] = true
	if r.entered[i] == 0 {
		r.waiting++
	}
}

// Enter marks job i entering a worker and returns its hold.
func (r *Recorder) Enter(i int) time.Duration {
	t := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < 0 || i >= len(r.entered) {
		r.errs = append(r.errs, fmt.Errorf("job index %d out of range", i))
		return 0
	}
	r.entered[i]++
	if r.entered[i] > 1 {
		r.doubles++
	} else if r.enqueued[i] {
		r.waiting--
	}
	if r.firstIn < 0 {
		r.firstIn = t
	}
	r.running++
	r.maxRun = max(r.maxRun, r.running)
	if len(r.open) > 0 {
		r.wakes = append(r.wakes, t-r.open[0])
		r.open = r.open[1:]
	}
	return r.holds[i]
}

// Return marks a worker returning from job i.
func (r *Recorder) Return(i int) {
	t := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < 0 || i >= len(r.entered) {
		return
	}
	r.running--
	r.lastOut = max(r.lastOut, t)
	if r.waiting > len(r.open) {
		r.open = append(r.open, t)
	}
	if r.entered[i] == 1 {
		r.returned++
		if r.returned == len(r.holds) {
			r.closeOnce.Do(func() { close(r.done) })
		}
	}
}

// Fail records an error of the system under test.
func (r *Recorder) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 20 {
		r.errs = append(r.errs, err)
	}
}

// Done is closed once every job returned once.
func (r *Recorder) Done() <-chan struct{} { return r.done }

// Result is one run of one system.
type Result struct {
	System      string
	Jobs        int
	Lifecycles  float64 // jobs / (last return - first entry)
	Enqueue     float64 // enqueue calls / (last enqueue return - first enqueue start)
	Wake        [3]time.Duration
	Wakes       int
	MaxRunning  int
	Doubles     int
	Missing     int
	Errors      []error
	Elapsed     time.Duration // first enqueue start to last return
	CPUBusy     float64       // the machine's busy fraction of all cores during the run
	ServerCPUUS float64       // the server's CPU µs per job (Redis, PostgreSQL and its backends, parkinglot serve)
	HarnessCPU  float64       // this process's CPU µs per job
	// RTT is, for Parkinglot, the client's round trips by route (submit,
	// complete, claim): p50, p95, p99.
	RTT map[string][3]time.Duration `json:",omitempty"`
	// Fsync is, before a run on the embedded store, the disk's fdatasync
	// p50, p95, p99 in the directory of its data.
	Fsync [3]time.Duration
}

// Result summarizes the run.
func (r *Recorder) Result(system string) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{System: system, Jobs: len(r.holds), MaxRunning: r.maxRun, Doubles: r.doubles, Errors: slices.Clone(r.errs)}
	for _, n := range r.entered {
		if n == 0 {
			res.Missing++
		}
	}
	if d := r.lastOut - r.firstIn; d > 0 {
		res.Lifecycles = float64(len(r.holds)-res.Missing) / d.Seconds()
	}
	if d := r.lastEnq - r.firstEnq; d > 0 {
		res.Enqueue = float64(r.enqCalls) / d.Seconds()
	}
	res.Elapsed = r.lastOut - r.firstEnq
	res.Wakes = len(r.wakes)
	res.Wake = percentiles(r.wakes, 0.50, 0.95, 0.99)
	return res
}

// percentiles returns the nearest-rank percentiles of ds.
func percentiles(ds []time.Duration, ps ...float64) [3]time.Duration {
	var out [3]time.Duration
	if len(ds) == 0 {
		return out
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	for k, p := range ps {
		idx := int(p*float64(len(s))+0.999999) - 1
		out[k] = s[min(max(idx, 0), len(s)-1)]
	}
	return out
}
