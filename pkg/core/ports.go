package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The ports below are what a backend implements. Each is sized to one
// DynamoDB or SQS call pattern (docs/architecture.md maps them): single-item
// reads, one small atomic transaction per transition, index queries, and an
// at-least-once queue. None needs a global lock.

// PoolStore holds one item per pool: its configuration and counters.
type PoolStore interface {
	// PutPool creates the pool or updates its configuration, keeping its
	// counters. Lowering capacity below running is allowed: admission then
	// waits until running drops below the new capacity.
	PutPool(ctx context.Context, cfg PoolConfig) error
	// Pool returns the pool item, or ErrPoolNotFound.
	Pool(ctx context.Context, name string) (Pool, error)
	// Pools returns every pool item, ordered by name.
	Pools(ctx context.Context) ([]Pool, error)
}

// TaskStore reads task and idempotency-key items and the due-time indexes.
// Writes go through Committer.
type TaskStore interface {
	// Task returns the task item, or ErrNotFound.
	Task(ctx context.Context, id string) (Task, error)
	// Key returns the idempotency key item, or ErrNotFound.
	Key(ctx context.Context, tenant, key string) (KeyRecord, error)
	// Due returns up to limit ids of non-terminal tasks whose DueAt is at or
	// before t, soonest first. The index may be stale: core re-reads each task.
	Due(ctx context.Context, t time.Time, limit int) ([]string, error)
	// Unsent returns up to limit ids of tasks whose Unsent flag is set.
	Unsent(ctx context.Context, limit int) ([]string, error)
}

// KeyRecord maps a tenant's idempotency key to the task it created.
type KeyRecord struct {
	Tenant   string
	Key      string
	TaskID   string
	BodyHash string
}

// Committer applies one transition atomically: all of it or none of it.
//
// The rules of a transaction are core's, written once as methods of Txn and
// TaskWrite; a store reads the items a transaction names and asks them:
//
//   - Txn.CheckShape: refuse a malformed transaction before reading anything.
//   - Txn.TouchesPool: whether the pool item is read (and must exist, else
//     ErrPoolNotFound) and written.
//   - TaskWrite.Conflicts, for each task as stored: ErrConflict.
//   - the key item as stored: ErrKeyExists if it exists.
//   - Txn.CheckPool, on the pool item as stored: ErrNoCapacity or
//     ErrPoolFull.
//   - Txn.StampAfter, on the pool item's LastAt as stored, when the
//     transaction touches the pool: its events, and the times it writes
//     with them, never go back before the pool's last committed
//     transition; the pool item keeps the result as its LastAt. It
//     refuses (ErrLateStart) a transaction whose start it would move to or
//     past the task's deadline.
//
// A store that has the conditions evaluated elsewhere (DynamoDB's condition
// expressions) expresses the same conditions there, and uses these methods
// to name the condition that failed from the items as they were; one that
// cannot raise the stamp inside its write conditions the write on
// Txn.StampBehind being false (and, on a tie, on its events' sequence
// numbers following the pool's last), and on its failure calls StampAfter
// with the pool's LastAt as it was and commits again, unless that refuses
// it with ErrLateStart, which Commit then returns.
//
// Commit may so change the times of txn (see Txn.Restamp): the caller reads
// what was committed from txn after Commit returns.
type Committer interface {
	// Commit checks every condition of txn and applies every write, or
	// applies nothing and returns ErrConflict, ErrNoCapacity, ErrPoolFull,
	// ErrKeyExists, ErrPoolNotFound or ErrLateStart (wrapped) naming the
	// first condition that failed, or another error if the outcome is
	// unknown.
	Commit(ctx context.Context, txn *Txn) error
}

// Txn is one transition: the pool item's counters and conditions, the task
// items it writes, an optional idempotency key, and the audit events and
// mailbox messages written with it. On DynamoDB it is one
// TransactWriteItems call.
type Txn struct {
	Pool string
	// RunningDelta and ParkedDelta change the pool's counters.
	RunningDelta int
	ParkedDelta  int
	// NeedSlot requires running + RunningDelta <= capacity: the write must
	// leave the pool within its capacity. With RunningDelta 1 (a start) that
	// is a free slot; with RunningDelta 0 (a hand-off: one task's release and
	// the next one's start) the released slot must still be within capacity,
	// which it is not when capacity was lowered below running.
	NeedSlot bool
	// FirstInLine requires parked == 0 before the write, so that a new
	// submission does not overtake parked tasks.
	FirstInLine bool
	// NeedParkRoom requires parked < maxParked before the write.
	NeedParkRoom bool

	Tasks    []TaskWrite
	Key      *KeyRecord // written only if absent
	Events   []Event
	Messages []Message
}

// TouchesPool reports whether txn moves the pool's counters or has a
// condition on them: whether a store reads and writes the pool item. A
// transaction that does not (a heartbeat) writes only its other items.
func (txn *Txn) TouchesPool() bool {
	return txn.RunningDelta != 0 || txn.ParkedDelta != 0 || txn.NeedSlot || txn.FirstInLine || txn.NeedParkRoom
}

// Stamp returns the time txn's events carry, the time its transition was
// decided (core stamps every event of a transaction alike); zero when it
// has none.
func (txn *Txn) Stamp() time.Time {
	if len(txn.Events) == 0 {
		return time.Time{}
	}
	return txn.Events[0].At
}

// StampAfter keeps a pool's audit trail in commit order. Core reads its
// clock when it decides a transition, before the commit, so two
// transitions of one pool can commit in the other order than their stamps:
// a start stamped before a release that it committed after would show,
// replayed in (At, Seq) order, more tasks running than the pool's capacity.
// A store calls StampAfter on every transaction that touches the pool,
// under the pool item's lock (or in the pool item's write), with last, the
// LastAt of the pool as stored, after checking the transaction's other
// conditions and before writing anything; it stores the result as the
// pool's new LastAt, and gives the events sequence numbers in commit order
// among the pool's transactions. StampAfter raises txn's stamp to last
// when it lies before it (Restamp), and returns the stamp, or last when
// txn has no events.
//
// A start never moves to or past its task's deadline (Restamp): then
// StampAfter changes nothing and returns ErrLateStart, and the store
// refuses the whole transaction with it.
//
// Only transactions that touch the pool are ordered: the others (a
// rejection, which holds no slot and no parked place; a heartbeat, which
// has no event) change nothing a replay of the pool's capacity counts.
func (txn *Txn) StampAfter(last time.Time) (time.Time, error) {
	at := txn.Stamp()
	switch {
	case at.IsZero():
		return last, nil
	case at.Before(last):
		if !txn.Restamp(last) {
			return time.Time{}, ErrLateStart
		}
		return last, nil
	}
	return at, nil
}

// StampBehind reports whether txn's stamp lies before last, the pool's
// LastAt: the condition on which a store that cannot raise the stamp in
// its write (DynamoDB) refuses the write.
func (txn *Txn) StampBehind(last time.Time) bool {
	at := txn.Stamp()
	return !at.IsZero() && at.Before(last)
}

// Restamp moves txn's transition to time at: every time of StampedTimes
// by the same amount. It reports whether it did: it refuses, changing
// nothing, to move a start (a task that txn takes to running: its
// StartedAt, which StampedTimes moves) to or past that task's Deadline.
// "A parked task never starts at or after its deadline" holds for the
// time a start commits at, not only for the time core decided it; a store
// that cannot restamp refuses the transaction (ErrLateStart).
func (txn *Txn) Restamp(at time.Time) bool {
	old := txn.Stamp()
	if old.IsZero() || old.Equal(at) {
		return true
	}
	d := at.Sub(old)
	if txn.StartsBy(d) {
		return false
	}
	txn.StampedTimes(func(t *time.Time) { *t = t.Add(d) })
	return true
}

// StartsBy reports whether moving txn's stamp by d would move a start to
// or past its task's deadline: the rule of Restamp, which a store that
// moves the times itself (in SQL) applies likewise.
func (txn *Txn) StartsBy(d time.Duration) bool {
	if d <= 0 {
		return false
	}
	late := false
	txn.stampedStarts(func(t *Task) {
		if !t.Deadline.IsZero() && !t.StartedAt.Add(d).Before(t.Deadline) {
			late = true
		}
	})
	return late
}

// stampedStarts calls f with each task that txn starts at its stamp: one
// whose StartedAt StampedTimes moves.
func (txn *Txn) stampedStarts(f func(*Task)) {
	old := txn.Stamp()
	if old.IsZero() {
		return
	}
	for i := range txn.Tasks {
		t := &txn.Tasks[i].Task
		if t.StartedAt.IsZero() || !t.StartedAt.Equal(old) {
			continue
		}
		for _, e := range txn.Events {
			if e.TaskID == t.ID && e.To == StateRunning {
				f(t)
				break
			}
		}
	}
}

// StampedTimes calls f once with each time of txn that its stamp governs,
// which Restamp moves with it: its events' and messages' times, and the
// times that its events record on its tasks (a submission's SubmittedAt, a
// start's StartedAt, an end's EndedAt). A start keeps its lease's length
// and its push's hold: its lease end and pending push move with it, in the
// task and in its started message. Deadlines do not move. A store that
// moves the stamp where core cannot (in SQL) moves these times.
func (txn *Txn) StampedTimes(f func(*time.Time)) {
	old := txn.Stamp()
	if old.IsZero() {
		return
	}
	var seen []*time.Time
	once := func(t *time.Time) {
		if t.IsZero() || slices.Contains(seen, t) {
			return
		}
		seen = append(seen, t)
		f(t)
	}
	for i := range txn.Events {
		e := &txn.Events[i]
		once(&e.At)
		for j := range txn.Tasks {
			t := &txn.Tasks[j].Task
			if t.ID != e.TaskID {
				continue
			}
			if e.From == "" && t.SubmittedAt.Equal(old) {
				once(&t.SubmittedAt)
			}
			if e.To == StateRunning && t.StartedAt.Equal(old) {
				once(&t.StartedAt)
				once(&t.LeaseExpiresAt)
				once(&t.PushAt)
			}
			if e.To.Terminal() && t.EndedAt.Equal(old) {
				once(&t.EndedAt)
			}
		}
	}
	for i := range txn.Messages {
		m := &txn.Messages[i]
		if !m.At.Equal(old) {
			continue
		}
		once(&m.At)
		if m.Type == MessageStarted {
			once(&m.LeaseExpiresAt)
		}
	}
}

// CheckShape returns an error if txn is malformed: pool counters or
// conditions without a pool, or a task written twice. A store checks it
// before reading or locking anything, and so may take every task item it
// names to be a distinct item. The error is a bug of the caller, not a
// refusal: it wraps no sentinel.
func (txn *Txn) CheckShape() error {
	if txn.Pool == "" && txn.TouchesPool() {
		return errors.New("commit: pool counters or conditions without a pool")
	}
	for i, w := range txn.Tasks {
		for _, u := range txn.Tasks[:i] {
			if u.Task.ID == w.Task.ID {
				return fmt.Errorf("commit: task %s written twice", w.Task.ID)
			}
		}
	}
	return nil
}

// CheckPool returns the first of txn's pool conditions that fails on the
// pool item p as stored before the write: ErrNoCapacity (NeedSlot, then
// FirstInLine) or ErrPoolFull (NeedParkRoom), wrapped and naming the pool;
// nil if they all hold.
func (txn *Txn) CheckPool(p Pool) error {
	if txn.SlotMissing(p.Running, p.Capacity) {
		return fmt.Errorf("commit pool %s: %w", txn.Pool, ErrNoCapacity)
	}
	return txn.CheckParked(p.Parked, p.MaxParked)
}

// CheckParked is CheckPool's conditions on the parked count alone
// (FirstInLine, then NeedParkRoom), for a store that counts running tasks
// on other items than the pool's (awsstore's slot shards) and checks
// NeedSlot there.
func (txn *Txn) CheckParked(parked, maxParked int) error {
	switch {
	case txn.Overtakes(parked):
		return fmt.Errorf("commit pool %s: %w", txn.Pool, ErrNoCapacity)
	case txn.NeedParkRoom && parked >= maxParked:
		return fmt.Errorf("commit pool %s: %w", txn.Pool, ErrPoolFull)
	}
	return nil
}

// SlotMissing reports whether txn's NeedSlot condition fails on a pool with
// these counters.
func (txn *Txn) SlotMissing(running, capacity int) bool {
	return txn.SlotMissingOn(running, txn.RunningDelta, capacity)
}

// SlotMissingOn is SlotMissing on one part of a pool's running count (a
// store that spreads it over several items, as awsstore's slot shards do):
// the part's running count, the change txn makes to that part, and the
// part's capacity.
func (txn *Txn) SlotMissingOn(running, delta, capacity int) bool {
	return txn.NeedSlot && running+delta > capacity
}

// Overtakes reports whether txn's FirstInLine condition fails with parked
// tasks waiting (or, on a store that keeps only a flag, parked > 0 when
// any is).
func (txn *Txn) Overtakes(parked int) bool {
	return txn.FirstInLine && parked > 0
}

// TaskWrite puts a task item if its stored version equals Expect (0: the
// item must not exist) and, when ExpectState is set, its stored state is
// that one. The stored version becomes Expect+1.
type TaskWrite struct {
	Task   Task
	Expect int64
	// ExpectState is set by a start from the copy of a task that its
	// parking message carries (Parked.Task): the copy foresees the version
	// its send's next write gives the task, and another write (a cancel, an
	// expiry, a start) may have reached that version instead; none of those
	// leaves the task parked.
	ExpectState State
}

// Conflicts reports whether w's compare-and-set fails on the task item as
// stored: exists, at version and in state (both ignored when it does not
// exist). A store refuses such a write with ErrConflict.
func (w TaskWrite) Conflicts(exists bool, version int64, state State) bool {
	if w.Expect == 0 {
		return exists
	}
	return !exists || version != w.Expect || w.ExpectState != "" && state != w.ExpectState
}

// ParkingQueue holds parked work per pool: at-least-once, roughly FIFO per
// tenant, fair between tenants (an SQS FIFO queue per pool with a few
// message groups per tenant). Consumers must be idempotent.
type ParkingQueue interface {
	// Send enqueues a parked task. Sending the same task twice may deliver
	// it twice.
	Send(ctx context.Context, pool string, p Parked) error
	// Receive returns up to max messages, each hidden from other receivers
	// until deleted, released, or the backend's visibility timeout ends.
	Receive(ctx context.Context, pool string, max int) ([]Delivery, error)
	// Delete removes a received message.
	Delete(ctx context.Context, pool string, receipt string) error
	// Release makes a received message visible again at once.
	Release(ctx context.Context, pool string, receipt string) error
}

// Parked is the queue message for a parked task.
type Parked struct {
	TaskID   string
	Tenant   string
	Deadline time.Time
	// Resend is zero for a task's first send and the outbox's re-sends,
	// which a queue that deduplicates sends (SQS FIFO) may drop as repeats
	// of an earlier send. A reconcile's re-send of a message that may be
	// lost sets it to the time of the reconcile: a queue must not drop it as
	// a repeat of a send of another Resend time (sends of one Resend time
	// may be dropped as repeats of each other).
	Resend time.Time
	// Task, when set, is the task as its sender expects it to be stored
	// once the send is recorded. A receiver may start the task from it
	// without reading the task item: the start's commit is conditioned on
	// its version and on the state parked (TaskWrite.ExpectState), and a
	// refused commit reads the task. A queue that cannot
	// carry it whole leaves it out of the message (nil when received).
	Task *Task
}

// Delivery is a received queue message.
type Delivery struct {
	Parked
	Receipt string
}

// MailboxStore reads recipients' mailboxes. Messages are written by Commit,
// which assigns each a cursor greater than that of every message of the same
// mailbox committed before it.
type MailboxStore interface {
	// Messages returns up to limit messages of (tenant, recipient) with a
	// cursor greater than both after and the mailbox's acknowledged cursor,
	// in cursor order, and stops at the first message that does not fit
	// the page (PageFits with MessageBytes): it reads no more than it
	// returns but that one message.
	Messages(ctx context.Context, tenant, recipient string, after Cursor, limit int) ([]Message, error)
	// Ack records that messages up to and including upTo are handled.
	// A cursor beyond the mailbox's newest message is ErrAckBeyondNewest:
	// acknowledging it would hide messages not yet written.
	// The acknowledged cursor never moves back.
	Ack(ctx context.Context, tenant, recipient string, upTo Cursor) error
}

// MailboxWatcher is implemented by backends that can signal new mailbox
// messages; core long-polls by polling the others.
type MailboxWatcher interface {
	// WatchMailbox returns a channel that receives a value after a message
	// lands in (tenant, recipient), and a function that stops the watch.
	WatchMailbox(tenant, recipient string) (<-chan struct{}, func())
}

// QueueLongPoller is implemented by a ParkingQueue whose receive can wait
// for a message to arrive (SQS's long poll): a claim that waits for work in
// a pool with free slots waits on the queue itself, rather than polling
// the pool item for parks of other processes.
type QueueLongPoller interface {
	// ReceiveWait is Receive that waits up to wait (whole seconds, at most
	// 20s) for a message when none is visible.
	ReceiveWait(ctx context.Context, pool string, max int, wait time.Duration) ([]Delivery, error)
}

// QueueReconciler is implemented by a backend whose parking queue can lose
// messages that its task items keep: on SQS a purge, a queue deleted and
// created again, a message moved to a dead-letter queue, or a table
// restored from a backup with queues that never held its parked tasks. Such
// a task would wait, without a message, until its deadline. The sweep
// therefore reconciles, every Config.ReconcileEvery, each pool whose queue
// looks short with its parked tasks (Scheduler.Sweep).
type QueueReconciler interface {
	// QueueShort reports whether pool's queue may hold fewer messages than
	// parked, the pool's parked count. It is a cheap check (one call per
	// pool), and may be wrong either way for a while (SQS's approximate
	// counts): a queue missing a message while it holds duplicates of
	// other tasks' messages is found only once they are consumed.
	QueueShort(ctx context.Context, pool string, parked int) (bool, error)
	// NonTerminal returns up to limit ids of non-terminal tasks of every
	// pool, from the page that cursor after names ("" for the first), and
	// the cursor of the next page ("" after the last). core re-reads each
	// task.
	NonTerminal(ctx context.Context, after string, limit int) (ids []string, next string, err error)
}

// AuditStore queries the audit trail, written by Commit.
type AuditStore interface {
	// Events returns up to q.Limit events of q.Tenant with From <= At < To,
	// after q.After in (At, Seq) order, filtered by q.Pool and q.TaskID when
	// set, and stops at the first event that does not fit the page
	// (PageFits with EventBytes).
	Events(ctx context.Context, q AuditQuery) ([]Event, error)
}

// Retention removes mailbox messages and audit events past their retention.
type Retention interface {
	// Purge deletes messages created before messagesBefore and events
	// before eventsBefore, and reports how many it deleted.
	Purge(ctx context.Context, messagesBefore, eventsBefore time.Time) (int, error)
}

// Backend is everything core needs from a store.
type Backend interface {
	PoolStore
	TaskStore
	Committer
	ParkingQueue
	MailboxStore
	AuditStore
	Retention
}
