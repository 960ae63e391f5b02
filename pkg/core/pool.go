package core

import (
	"fmt"
	"time"
)

// PoolConfig is a pool's configuration.
type PoolConfig struct {
	Name string
	// Capacity is the hard limit of tasks running at once.
	Capacity int
	// MaxParked bounds the parked depth; submissions past it are rejected.
	MaxParked int
	// DefaultMaxWait is how long a task may stay parked when the submission
	// names neither maxWait nor deadline.
	DefaultMaxWait time.Duration
	// RunTimeout is the lease length when the submission names none.
	RunTimeout time.Duration
	// SlotShards spreads the pool's running count over this many counters
	// on backends whose single item takes a bounded write rate (the
	// DynamoDB backend: one item per shard, the capacity split between
	// them). 0 and 1 keep one counter. Backends that hold counters in memory
	// or on one disk (memstore, pebblestore) ignore it. At most
	// MaxSlotShards, and not more than Capacity.
	SlotShards int
	// Executor is how a started task reaches the one who runs it:
	// ExecutorPermit (the default, also when empty), ExecutorPull or
	// ExecutorPush.
	Executor Executor
}

// Executor is how a pool's started tasks reach the ones who run them.
type Executor string

// Executors.
const (
	// ExecutorPermit: every start, an admission at submit too, posts a
	// started message with the lease to the task's recipient, who runs the
	// task and completes it.
	ExecutorPermit Executor = "permit"
	// ExecutorPull: tasks park until a worker claims them; a claim is the
	// start, for that worker. Nothing else starts a task of a pull pool.
	ExecutorPull Executor = "pull"
	// ExecutorPush: every start is delivered to the pool's target (an HTTP
	// endpoint, a function, a queue) by the scheduler's Pusher, after the
	// start commits, at least once; the target holds the lease. The
	// recipient's started message goes without it.
	ExecutorPush Executor = "push"
)

// Pulls reports whether the pool's tasks start only when claimed.
func (c PoolConfig) Pulls() bool { return c.Executor == ExecutorPull }

// Pushes reports whether the pool's started tasks are pushed to a target.
func (c PoolConfig) Pushes() bool { return c.Executor == ExecutorPush }

// MaxSlotShards bounds PoolConfig.SlotShards: a transaction that empties or
// fills the pool's parked count writes every shard, and a DynamoDB
// transaction holds at most 100 items.
const MaxSlotShards = 64

// Validate names the first bad field.
func (c PoolConfig) Validate() error {
	switch {
	case !validName(c.Name):
		return Invalid("name", "pool name %q must be 1-64 characters of [A-Za-z0-9_.-]", c.Name)
	case c.Capacity < 1:
		return Invalid("capacity", "pool %s: capacity must be at least 1, got %d", c.Name, c.Capacity)
	case c.MaxParked < 0:
		return Invalid("maxParked", "pool %s: maxParked must not be negative, got %d", c.Name, c.MaxParked)
	case c.DefaultMaxWait <= 0:
		return Invalid("defaultMaxWait", "pool %s: defaultMaxWait must be positive, got %s", c.Name, c.DefaultMaxWait)
	case c.DefaultMaxWait > MaxWaitLimit:
		return Invalid("defaultMaxWait", "pool %s: defaultMaxWait must be at most %s, got %s", c.Name, MaxWaitLimit, c.DefaultMaxWait)
	case c.RunTimeout <= 0:
		return Invalid("runTimeout", "pool %s: runTimeout must be positive, got %s", c.Name, c.RunTimeout)
	case c.RunTimeout > MaxRunTimeout:
		return Invalid("runTimeout", "pool %s: runTimeout must be at most %s, got %s", c.Name, MaxRunTimeout, c.RunTimeout)
	case c.SlotShards < 0 || c.SlotShards > MaxSlotShards:
		return Invalid("slotShards", "pool %s: slotShards must be 0-%d, got %d", c.Name, MaxSlotShards, c.SlotShards)
	case c.Executor != "" && c.Executor != ExecutorPermit && c.Executor != ExecutorPull && c.Executor != ExecutorPush:
		return Invalid("executor", "pool %s: executor must be %q, %q or %q, got %q", c.Name, ExecutorPermit, ExecutorPull, ExecutorPush, c.Executor)
	case c.SlotShards > c.Capacity:
		return Invalid("slotShards", "pool %s: slotShards %d exceeds capacity %d: a shard would hold no slot", c.Name, c.SlotShards, c.Capacity)
	}
	return nil
}

// Pool is a pool's configuration with its counters, as one item holds them.
type Pool struct {
	PoolConfig
	Running int // tasks holding a slot
	Parked  int // tasks in state parked
	// LastAt is the stamp of the last committed transaction that touched
	// the pool (see Txn.StampAfter); zero before the first.
	LastAt time.Time
}

// PoolStats is what the pools routes report.
type PoolStats struct {
	Name      string
	Capacity  int
	Running   int
	Parked    int
	MaxParked int
	Executor  Executor // as configured: empty is ExecutorPermit
}

func (p Pool) stats() PoolStats {
	return PoolStats{Name: p.Name, Capacity: p.Capacity, Running: p.Running, Parked: p.Parked, MaxParked: p.MaxParked, Executor: p.Executor}
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (p Pool) String() string {
	return fmt.Sprintf("%s(%d/%d running, %d/%d parked)", p.Name, p.Running, p.Capacity, p.Parked, p.MaxParked)
}
