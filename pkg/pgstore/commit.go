package pgstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// SQLSTATEs that the store's functions raise (migrations/0001_init.sql;
// PLT02: migrations/0004_late_start.sql).
const (
	codePoolNotFound  = "PLP01"
	codePoolCondition = "PLP02"
	codeTaskConflict  = "PLT01"
	codeLateStart     = "PLT02"
	codeKeyExists     = "PLK01"
)

// Group commit. A pool's row is updated by every transition of the pool,
// and a mailbox's head row by every message to it; PostgreSQL holds a row
// lock until the commit's WAL flush, so transactions that each moved one
// transition would take one flush each, one after another, per pool and per
// mailbox. Instead, Commit hands its transaction to one of the store's
// writers, which takes every transaction waiting at the time (up to
// maxGroup) into one call of commit_many: one round trip, one database
// transaction, one WAL flush and one hold of each hot row for the group.
// Each transition runs in a subtransaction of its own (commit_one), so a
// failed condition fails that transition alone; a later transition of the
// group sees the earlier ones' writes, as a later commit would.
const (
	// writers is the number of groups in flight per store: one commits
	// while the next gathers.
	writers = 2
	// maxGroup bounds the transitions of one group, and maxGroupBytes the
	// payloads and results it carries (base64 in the group's JSON), so
	// that a group of large tasks stays a modest statement.
	maxGroup      = 256
	maxGroupBytes = 8 << 20
	// maxGroupAttempts bounds the attempts of a group that the database
	// rolled back whole for a reason of its own (a deadlock or
	// serialization failure), which says nothing about its transitions.
	maxGroupAttempts = 8
)

type commitReq struct {
	txn   *core.Txn
	done  chan error
	bytes int // payloads and results
}

func txnBytes(txn *core.Txn) int {
	n := 0
	for _, w := range txn.Tasks {
		n += len(w.Task.Payload) + len(w.Task.Result)
	}
	for i := range txn.Messages {
		n += len(txn.Messages[i].Payload) + len(txn.Messages[i].Result)
	}
	return n
}

// errText refuses text that a PostgreSQL text column cannot hold.
var errText = errors.New("text with a NUL byte or invalid UTF-8 cannot be stored in PostgreSQL")

// storableText checks every text field of txn: PostgreSQL's text holds
// neither NUL nor invalid UTF-8 (and encoding/json would silently replace
// the latter).
func storableText(txn *core.Txn) error {
	ok := func(ss ...string) bool {
		for _, s := range ss {
			if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
				return false
			}
		}
		return true
	}
	if !ok(txn.Pool) {
		return errText
	}
	for _, w := range txn.Tasks {
		t := &w.Task
		if !ok(t.ID, t.Key, t.Tenant, t.Pool, t.Recipient, string(t.State), t.Lease, t.Error, t.BodyHash) {
			return errText
		}
	}
	if k := txn.Key; k != nil && !ok(k.Tenant, k.Key, k.TaskID, k.BodyHash) {
		return errText
	}
	for i := range txn.Events {
		e := &txn.Events[i]
		if !ok(e.Tenant, e.Pool, e.TaskID, e.Type, string(e.From), string(e.To), e.Detail) {
			return errText
		}
	}
	for i := range txn.Messages {
		m := &txn.Messages[i]
		if !ok(m.Tenant, m.Recipient, m.TaskID, m.Pool, string(m.Type), m.Key, m.Lease, m.Error) {
			return errText
		}
	}
	return nil
}

// Commit applies txn atomically; see core.Committer and the group commit
// above. A failed condition is translated to core's error by core's own
// checks on the rows as the transaction saw them: TaskWrite.Conflicts on
// the stored version, Txn.CheckPool on the locked pool row that
// commit_pool reports. A ctx that ends before the transaction joins a
// group fails Commit with nothing applied; once it has joined, Commit
// returns the group's answer.
func (s *Store) Commit(ctx context.Context, txn *core.Txn) error {
	if err := txn.CheckShape(); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if err := storableText(txn); err != nil {
		// Refused alone, before it joins a group that it would fail.
		return fmt.Errorf("pgstore: commit %s: %w", describe(txn), err)
	}
	req := &commitReq{txn: txn, done: make(chan error, 1), bytes: txnBytes(txn)}
	select {
	case s.commits <- req:
	case <-ctx.Done():
		return fmt.Errorf("pgstore: commit %s: %w", describe(txn), ctx.Err())
	case <-s.closed:
		return fmt.Errorf("pgstore: commit %s: store closed", describe(txn))
	}
	// Once handed over, wait for the outcome even if ctx ends: a group
	// takes milliseconds, and an answer of "unknown" would leave the
	// caller to guess, for example, whether a task it started holds a slot
	// under a lease nobody knows.
	return <-req.done
}

// writer gathers groups and commits them until the store closes.
func (s *Store) writer() {
	defer s.writersDone.Done()
	for {
		var first *commitReq
		select {
		case first = <-s.commits:
		case <-s.closed:
			return
		}
		group := []*commitReq{first}
		bytes := first.bytes
	gather:
		for len(group) < maxGroup && bytes < maxGroupBytes {
			select {
			case r := <-s.commits:
				group = append(group, r)
				bytes += r.bytes
			default:
				break gather
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup commits group and answers each of its requests.
func (s *Store) commitGroup(group []*commitReq) {
	arg, err := groupJSON(group, s.notify.channel)
	if err != nil {
		for _, r := range group {
			r.done <- fmt.Errorf("pgstore: commit %s: %w", describe(r.txn), err)
		}
		return
	}
	var results []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  string `json:"detail"`
		Shift   int64  `json:"shift"`
	}
	for attempt := 1; ; attempt++ {
		var raw []byte
		// Not the requests' contexts: the group is theirs together. A
		// request that stops waiting learns nothing of the outcome.
		err = s.pool.QueryRow(context.Background(), `SELECT commit_many($1, $2)`, arg, s.notify.channel).Scan(&raw)
		if err == nil {
			err = json.Unmarshal(raw, &results)
			if err == nil && len(results) != len(group) {
				err = fmt.Errorf("commit_many answered %d results for %d transitions", len(results), len(group))
			}
		}
		var pe *pgconn.PgError
		if err != nil && errors.As(err, &pe) && retryable(pe.Code) && attempt < maxGroupAttempts {
			continue
		}
		break
	}
	for i, r := range group {
		if err != nil {
			r.done <- fmt.Errorf("pgstore: commit %s: %w", describe(r.txn), err)
			continue
		}
		res := results[i]
		if res.Code == "" && res.Shift > 0 {
			// Committed later than the stamp allowed: the caller reads the
			// times as committed. commit_one refused (PLT02) what core's
			// rule refuses, so this cannot: if it did, the two disagree.
			if !r.txn.Restamp(r.txn.Stamp().Add(time.Duration(res.Shift))) {
				r.done <- fmt.Errorf("pgstore: commit %s: committed a start moved by %s to or past its deadline, which core refuses",
					describe(r.txn), time.Duration(res.Shift))
				continue
			}
		}
		if err := s.translate(r, res.Code, res.Message, res.Detail); err != errRequeued {
			r.done <- err
		}
	}
}

func retryable(code string) bool {
	return code == "40P01" || code == "40001" // deadlock_detected, serialization_failure
}

// translate turns one transition's result in its group into Commit's
// answer. A transition rolled back by a deadlock or serialization failure
// of its own is committed again, alone in a later group.
func (s *Store) translate(r *commitReq, code, msg, detail string) error {
	txn := r.txn
	switch code {
	case "":
		return nil
	case codePoolNotFound:
		return fmt.Errorf("pgstore: commit: %w: %s", core.ErrPoolNotFound, txn.Pool)
	case codePoolCondition:
		return namePoolFailure(txn, detail)
	case codeTaskConflict:
		return taskConflict(txn, msg, detail)
	case codeLateStart:
		return fmt.Errorf("pgstore: commit %s: %s: %w", describe(txn), msg, core.ErrLateStart)
	case codeKeyExists:
		return fmt.Errorf("pgstore: commit key %q: %w", txn.Key.Key, core.ErrKeyExists)
	}
	if retryable(code) {
		// Requeued behind the writer's current group; its caller still
		// waits on r.done.
		go func() {
			select {
			case s.commits <- r:
			case <-s.closed:
				r.done <- fmt.Errorf("pgstore: commit %s: store closed", describe(txn))
			}
		}()
		return errRequeued
	}
	return fmt.Errorf("pgstore: commit %s: %s (SQLSTATE %s)", describe(txn), msg, code)
}

// errRequeued marks a request handed back to the writers; it is never
// returned to a caller.
var errRequeued = errors.New("requeued")

func describe(txn *core.Txn) string {
	if len(txn.Tasks) > 0 {
		return "task " + txn.Tasks[0].Task.ID
	}
	return "pool " + txn.Pool
}

// The JSON that commit_many and commit_one read. Bytes (payload, result)
// are base64, as encoding/json writes []byte; times are Unix nanoseconds,
// null for the zero time.
type (
	groupArg struct {
		Tasks []string     `json:"tasks"`
		Boxes []mailboxKey `json:"boxes"`
		Pools []string     `json:"pools"`
		Txns  []txnArg     `json:"txns"`
	}
	txnArg struct {
		Tasks    []taskArg    `json:"tasks,omitempty"`
		Key      *keyArg      `json:"key,omitempty"`
		Events   []eventArg   `json:"events,omitempty"`
		Messages []messageArg `json:"messages,omitempty"`
		Pool     *string      `json:"pool,omitempty"`
		Run      int          `json:"run"`
		Park     int          `json:"park"`
		Slot     bool         `json:"slot"`
		First    bool         `json:"first"`
		Room     bool         `json:"room"`
		// At is the stamp of a transaction that touches the pool, which
		// commit_one raises to the pool's last (core.Txn.StampAfter),
		// moving by as much the times marked in each record's Shift.
		At *int64 `json:"at,omitempty"`
	}
	taskArg struct {
		ID             string `json:"id"`
		Expect         int64  `json:"expect"`
		ExpectState    string `json:"expect_state,omitempty"`
		Key            string `json:"key"`
		Tenant         string `json:"tenant"`
		Pool           string `json:"pool"`
		Recipient      string `json:"recipient"`
		State          string `json:"state"`
		Payload        []byte `json:"payload"`
		SubmittedAt    *int64 `json:"submitted_at"`
		Deadline       *int64 `json:"deadline"`
		RunTimeout     int64  `json:"run_timeout"`
		StartedAt      *int64 `json:"started_at"`
		Lease          string `json:"lease"`
		LeaseExpiresAt *int64 `json:"lease_expires_at"`
		EndedAt        *int64 `json:"ended_at"`
		Result         []byte `json:"result"`
		Error          string `json:"error"`
		BodyHash       string `json:"body_hash"`
		Unsent         bool   `json:"unsent"`
		DueAt          *int64 `json:"due_at"`
		PushAt         *int64 `json:"push_at"`
		PushAttempts   int    `json:"push_attempts"`
		Shift          int    `json:"shift,omitempty"` // taskShift bits
	}
	keyArg struct {
		Tenant   string `json:"tenant"`
		Key      string `json:"key"`
		TaskID   string `json:"taskId"`
		BodyHash string `json:"bodyHash"`
	}
	eventArg struct {
		Tenant string `json:"tenant"`
		At     int64  `json:"at"`
		Pool   string `json:"pool"`
		TaskID string `json:"task_id"`
		Type   string `json:"type"`
		From   string `json:"from_state"`
		To     string `json:"to_state"`
		Detail string `json:"detail"`
		Shift  int    `json:"shift,omitempty"` // 1: at
	}
	messageArg struct {
		Tenant    string `json:"tenant"`
		Recipient string `json:"recipient"`
		TaskID    string `json:"task_id"`
		Pool      string `json:"pool"`
		Type      string `json:"type"`
		Key       string `json:"key"`
		Payload   []byte `json:"payload"`
		Deadline  *int64 `json:"deadline"`
		Lease     string `json:"lease"`
		LeaseEnd  *int64 `json:"lease_expires_at"`
		Result    []byte `json:"result"`
		Error     string `json:"error"`
		At        int64  `json:"at"`
		Notify    string `json:"notify"`
		Shift     int    `json:"shift,omitempty"` // 1: at, 2: lease_expires_at
	}
)

type mailboxKey struct {
	Tenant    string `json:"tenant"`
	Recipient string `json:"recipient"`
}

// groupJSON encodes a group for commit_many, with the rows it locks first:
// the tasks it updates, the mailboxes and the pools, each sorted.
func groupJSON(group []*commitReq, channel string) ([]byte, error) {
	g := groupArg{Tasks: []string{}, Boxes: []mailboxKey{}, Pools: []string{}, Txns: make([]txnArg, len(group))}
	for i, r := range group {
		txn := r.txn
		a := &g.Txns[i]
		st := stampedTimes(txn)
		for j := range txn.Tasks {
			w := &txn.Tasks[j]
			t := &w.Task
			if w.Expect != 0 {
				g.Tasks = append(g.Tasks, t.ID)
			}
			a.Tasks = append(a.Tasks, taskArg{
				ID: t.ID, Expect: w.Expect, ExpectState: string(w.ExpectState), Key: t.Key, Tenant: t.Tenant, Pool: t.Pool, Recipient: t.Recipient,
				State: string(t.State), Payload: bytesOrNil(t.Payload), SubmittedAt: ns(t.SubmittedAt), Deadline: ns(t.Deadline),
				RunTimeout: int64(t.RunTimeout), StartedAt: ns(t.StartedAt), Lease: t.Lease, LeaseExpiresAt: ns(t.LeaseExpiresAt),
				EndedAt: ns(t.EndedAt), Result: bytesOrNil(t.Result), Error: t.Error, BodyHash: t.BodyHash, Unsent: t.Unsent,
				DueAt: ns(t.DueAt()), PushAt: ns(t.PushAt), PushAttempts: t.PushAttempts, Shift: st.task(t),
			})
		}
		if k := txn.Key; k != nil {
			a.Key = &keyArg{Tenant: k.Tenant, Key: k.Key, TaskID: k.TaskID, BodyHash: k.BodyHash}
		}
		for j := range txn.Events {
			e := &txn.Events[j]
			a.Events = append(a.Events, eventArg{Tenant: e.Tenant, At: e.At.UnixNano(), Pool: e.Pool, TaskID: e.TaskID,
				Type: e.Type, From: string(e.From), To: string(e.To), Detail: e.Detail, Shift: st.bits(&e.At)})
		}
		for j := range txn.Messages {
			m := &txn.Messages[j]
			g.Boxes = append(g.Boxes, mailboxKey{m.Tenant, m.Recipient})
			a.Messages = append(a.Messages, messageArg{Tenant: m.Tenant, Recipient: m.Recipient, TaskID: m.TaskID,
				Pool: m.Pool, Type: string(m.Type), Key: m.Key, Payload: bytesOrNil(m.Payload), Deadline: ns(m.Deadline),
				Lease: m.Lease, LeaseEnd: ns(m.LeaseExpiresAt), Result: bytesOrNil(m.Result), Error: m.Error,
				At: m.At.UnixNano(), Notify: mailboxPayload(m.Tenant, m.Recipient),
				Shift: st.bits(&m.At, &m.LeaseExpiresAt)})
		}
		if txn.TouchesPool() {
			a.Pool = &txn.Pool
			a.Run, a.Park, a.Slot, a.First, a.Room = txn.RunningDelta, txn.ParkedDelta, txn.NeedSlot, txn.FirstInLine, txn.NeedParkRoom
			if at := txn.Stamp(); !at.IsZero() {
				a.At = ns(at)
			}
			g.Pools = append(g.Pools, txn.Pool)
		}
	}
	slices.Sort(g.Tasks)
	g.Tasks = slices.Compact(g.Tasks)
	slices.SortFunc(g.Boxes, func(a, b mailboxKey) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Recipient, b.Recipient))
	})
	g.Boxes = slices.Compact(g.Boxes)
	slices.Sort(g.Pools)
	g.Pools = slices.Compact(g.Pools)
	return json.Marshal(g)
}

// stamped is the times of a transaction that its stamp governs
// (core.Txn.StampedTimes), which commit_one moves with the stamp; empty for
// a transaction that does not touch the pool, whose stamp never moves.
type stamped []*time.Time

func stampedTimes(txn *core.Txn) stamped {
	var st stamped
	if txn.TouchesPool() {
		txn.StampedTimes(func(t *time.Time) { st = append(st, t) })
	}
	return st
}

// bits returns a bit per time, in order (1, 2, 4...), set when the time is
// stamped.
func (st stamped) bits(times ...*time.Time) int {
	b := 0
	for i, t := range times {
		if slices.Contains(st, t) {
			b |= 1 << i
		}
	}
	return b
}

// task returns the stamped times of t as commit_one's shift bits: 1
// submitted_at, 2 started_at, 4 lease_expires_at, 8 ended_at, 16 push_at,
// and 32 due_at, which is derived (core.Task.DueAt) and moves when the time
// it is drawn from does.
func (st stamped) task(t *core.Task) int {
	if len(st) == 0 {
		return 0
	}
	b := st.bits(&t.SubmittedAt, &t.StartedAt, &t.LeaseExpiresAt, &t.EndedAt, &t.PushAt)
	if b == 0 {
		return 0
	}
	moved := *t
	for i, f := range []*time.Time{&moved.SubmittedAt, &moved.StartedAt, &moved.LeaseExpiresAt, &moved.EndedAt, &moved.PushAt} {
		if b&(1<<i) != 0 {
			*f = f.Add(time.Nanosecond)
		}
	}
	if due := t.DueAt(); !due.IsZero() && moved.DueAt().Equal(due.Add(time.Nanosecond)) {
		b |= 32
	}
	return b
}

// bytesOrNil keeps a nil payload or result NULL and an empty one empty,
// and makes a json.RawMessage plain bytes (base64 in JSON, not inlined).
func bytesOrNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return []byte(b)
}

// taskConflict names a task write's failed compare-and-set; the detail is
// the version stored when the write failed (0: no row).
func taskConflict(txn *core.Txn, msg, detail string) error {
	id := strings.TrimSuffix(strings.TrimPrefix(msg, "task "), " version conflict")
	v, _ := strconv.ParseInt(detail, 10, 64)
	for _, w := range txn.Tasks {
		if w.Task.ID != id {
			continue
		}
		if w.ExpectState == "" && !w.Conflicts(v != 0, v, "") {
			// (With ExpectState, the stored state the database refused is
			// not in the detail.)
			// Cannot be: the row is locked while it is compared.
			return fmt.Errorf("pgstore: commit task %s: %w (the database refused version %d, stored %d)", id, core.ErrConflict, w.Expect, v)
		}
		return fmt.Errorf("pgstore: commit task %s: %w (expected version %d, stored %d)", id, core.ErrConflict, w.Expect, v)
	}
	return fmt.Errorf("pgstore: commit task %s: %w", id, core.ErrConflict)
}

// namePoolFailure names the condition that failed on the pool row as
// commit_pool saw it, locked (detail: running parked capacity max_parked),
// with core's Txn.CheckPool. The pool is the transition's last write, so
// every task's compare-and-set and the key held: core's order of
// conditions (tasks, key, pool) is commit_one's.
func namePoolFailure(txn *core.Txn, detail string) error {
	p := core.Pool{PoolConfig: core.PoolConfig{Name: txn.Pool}}
	if _, err := fmt.Sscanf(detail, "%d %d %d %d", &p.Running, &p.Parked, &p.Capacity, &p.MaxParked); err != nil {
		return fmt.Errorf("pgstore: commit pool %s: unreadable condition detail %q: %w", txn.Pool, detail, err)
	}
	if err := txn.CheckPool(p); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	return fmt.Errorf("pgstore: commit pool %s: the database refused conditions that core finds met on %s", txn.Pool, p)
}
