package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// tenant is the one tenant of a web runtime. The browser's identity is the
// origin, which the worker already is: every tab of it shares one tenant,
// as every loopback client of a native server without tokens does.
const tenant = "default"

// engine is the scheduler with its store, and the notes of the call in
// progress.
type engine struct {
	s     *core.Scheduler
	store *webStore
	obs   *observer
	ctx   context.Context
}

func newEngine() *engine {
	clock := newBrowserClock()
	store := newWebStore(memstore.New(memstore.Options{Clock: clock}))
	obs := &observer{}
	s, err := core.New(core.Config{
		Backend:  store,
		Clock:    clock,
		Observer: obs,
		// Retention is applied when the mailbox and audit trail are
		// restored from IndexedDB (see restore), not by the sweeper:
		// a purge in memory that IndexedDB did not mirror would shift the
		// cursors of what is restored.
		PurgeEvery: 100 * 365 * 24 * time.Hour,
	})
	if err != nil {
		panic(err) // the config above is valid
	}
	return &engine{s: s, store: store, obs: obs, ctx: context.Background()}
}

// errBadCall is a call that is not (op, argsJSON).
var errBadCall = core.Invalid("call", "parkinglotCall takes two strings: the operation and its arguments as JSON")

// reply is what every call returns.
type reply struct {
	OK    any              `json:"ok,omitempty"`
	Error *api.ErrorDetail `json:"error,omitempty"`
	// Task is the task a refusal concerns: a rejected submission's, as
	// HTTP's 429 body carries it.
	Task  *api.Task `json:"task,omitempty"`
	Notes *notes    `json:"notes,omitempty"`
}

// Call runs op with its JSON arguments and returns the JSON reply, with
// the notes of what it caused.
func (e *engine) Call(op string, args []byte) []byte {
	var r reply
	if op == "batch" {
		r = e.batch(args)
	} else {
		r = e.run(op, args)
	}
	r.Notes = e.drain()
	return e.encode(r)
}

// fail answers err with the notes pending, for a call that could not run.
func (e *engine) fail(err error) []byte {
	r := failure(err, nil)
	r.Notes = e.drain()
	return e.encode(r)
}

// run runs one operation and returns its reply, without notes.
//
// A panic is answered as an internal error rather than let through: under
// js/wasm it would end the Go program, and every later call of every tab
// would fail with it. The stores release their locks as the panic unwinds
// (they unlock by defer), and every transition is one commit, so what a
// panicking call leaves is what a crash between two commits leaves, which
// the sweeper repairs.
func (e *engine) run(op string, args []byte) (r reply) {
	defer func() {
		if p := recover(); p != nil {
			r = failure(fmt.Errorf("panic in %s: %v", op, p), nil)
		}
	}()
	h, ok := ops[op]
	if op == "batch" {
		return failure(core.Invalid("op", "a batch cannot hold a batch"), nil)
	}
	if !ok {
		return failure(core.Invalid("op", "unknown operation %q; known: %s", clip(op), strings.Join(opNames(), ", ")), nil)
	}
	v, err := h(e, args)
	if err != nil {
		return failure(err, v)
	}
	return reply{OK: v}
}

// failure answers err as HTTP API v1 would: its code, message and field;
// a rejected submission carries its task, as a 429's body does.
func failure(err error, v any) reply {
	code, field := errorCode(err)
	msg := err.Error()
	if code == api.CodeInternal {
		msg = "internal error: " + msg // no one else reads it: the page needs it
	}
	r := reply{Error: &api.ErrorDetail{Code: code, Message: msg, Field: field}}
	if t, ok := v.(api.TaskBody); ok {
		r.Task = &t.Task
	}
	return r
}

// maxBatch bounds the calls of one batch.
const maxBatch = 10000

// batch runs several calls in one crossing into the wasm, in order, and
// returns their replies; the notes of them all come with the batch's own
// reply. A worker batches the requests that arrive together (a page's
// burst): each crossing from JavaScript into Go costs tens of
// microseconds, as much as a submission itself.
// It is not in ops, which it reads.
func (e *engine) batch(args []byte) reply {
	var in struct {
		Calls []struct {
			Op   string          `json:"op"`
			Args json.RawMessage `json:"args"`
		} `json:"calls"`
	}
	if err := decode(args, &in); err != nil {
		return failure(err, nil)
	}
	if len(in.Calls) > maxBatch {
		return failure(core.Invalid("calls", "a batch holds at most %d calls, got %d", maxBatch, len(in.Calls)), nil)
	}
	out := make([]reply, len(in.Calls))
	for i, c := range in.Calls {
		out[i] = e.run(c.Op, c.Args)
	}
	return reply{OK: map[string][]reply{"replies": out}}
}

func (e *engine) encode(r reply) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return []byte(`{"error":{"code":"internal","message":"internal error: encoding the reply failed"}}`)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// ops are the operations of the bridge, by name.
var ops = map[string]func(*engine, []byte) (any, error){
	"pools.put":  (*engine).putPools,
	"pools":      (*engine).pools,
	"pool":       (*engine).pool,
	"submit":     (*engine).submit,
	"task":       (*engine).task,
	"heartbeat":  (*engine).heartbeat,
	"complete":   (*engine).complete,
	"cancel":     (*engine).cancel,
	"mailbox":    (*engine).mailbox,
	"ack":        (*engine).ack,
	"audit":      (*engine).audit,
	"sweep":      (*engine).sweep,
	"watch":      (*engine).watch,
	"stats":      (*engine).stats,
	"bench.core": (*engine).benchCore,
	"persist":    (*engine).persist,
	"restore":    (*engine).restore,
}

func opNames() []string {
	names := []string{"batch"}
	for n := range ops {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// poolSpec is a pool as Parkinglot.start takes it.
type poolSpec struct {
	Name           string `json:"name"`
	Capacity       int    `json:"capacity"`
	MaxParked      int    `json:"maxParked"`
	DefaultMaxWait string `json:"defaultMaxWait"`
	RunTimeout     string `json:"runTimeout"`
}

// putPools creates or reconfigures pools, all or none: each is validated
// before any is written.
func (e *engine) putPools(args []byte) (any, error) {
	var in struct {
		Pools []poolSpec `json:"pools"`
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	if len(in.Pools) == 0 {
		return nil, core.Invalid("pools", "give at least one pool")
	}
	cfgs := make([]core.PoolConfig, len(in.Pools))
	for i, p := range in.Pools {
		at := fmt.Sprintf("pools[%d]", i)
		cfg := core.PoolConfig{Name: p.Name, Capacity: p.Capacity, MaxParked: p.MaxParked}
		var err error
		if cfg.DefaultMaxWait, err = requiredDuration(at+".defaultMaxWait", p.DefaultMaxWait); err != nil {
			return nil, err
		}
		if cfg.RunTimeout, err = requiredDuration(at+".runTimeout", p.RunTimeout); err != nil {
			return nil, err
		}
		if err := cfg.Validate(); err != nil {
			return nil, prefixField(err, at)
		}
		for _, prev := range cfgs[:i] {
			if prev.Name == cfg.Name {
				return nil, core.Invalid(at+".name", "pool %s is given twice", cfg.Name)
			}
		}
		cfgs[i] = cfg
	}
	for _, cfg := range cfgs {
		if err := e.s.PutPool(e.ctx, cfg); err != nil {
			return nil, err
		}
	}
	return e.pools(nil)
}

func (e *engine) pools([]byte) (any, error) {
	ps, err := e.s.Pools(e.ctx)
	if err != nil {
		return nil, err
	}
	out := api.PoolList{Pools: make([]api.Pool, len(ps))}
	for i, p := range ps {
		out.Pools[i] = api.FromPool(p)
	}
	return out, nil
}

func (e *engine) pool(args []byte) (any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	p, err := e.s.Pool(e.ctx, in.Name)
	if err != nil {
		return nil, err
	}
	return api.FromPool(p), nil
}

// submitArgs is a submission: HTTP API v1's body, and the pool.
type submitArgs struct {
	Pool string `json:"pool"`
	api.SubmitRequest
	// Watch asks for a note when the task, if parked, starts or ends:
	// what a permit waits for.
	Watch bool `json:"watch,omitempty"`
}

func (e *engine) submit(args []byte) (any, error) {
	var in submitArgs
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	req := core.SubmitRequest{Tenant: tenant, Pool: in.Pool, Key: in.Key, Recipient: in.Recipient, Payload: api.RawJSON(in.Payload)}
	if len(req.Payload) > core.MaxPayloadBytes {
		return nil, &api.TooLargeError{Field: "payload", Msg: fmt.Sprintf("payload must be at most %d bytes, got %d", core.MaxPayloadBytes, len(req.Payload))}
	}
	var err error
	if req.MaxWait, err = optDuration("maxWait", in.MaxWait); err != nil {
		return nil, err
	}
	if in.Deadline != "" {
		if req.Deadline, err = api.ParseTime("deadline", in.Deadline); err != nil {
			return nil, err
		}
	}
	if req.RunTimeout, err = optDuration("runTimeout", in.RunTimeout); err != nil {
		return nil, err
	}
	res, err := e.s.Submit(e.ctx, req)
	if res.Task.ID == "" {
		return nil, err
	}
	if in.Watch && res.Task.State == core.StateParked {
		// The task's own wake-up may have started it within Submit, which
		// returns it as parked: read it again, so that the reply says how
		// it stands and only a task still parked is watched.
		if cur, rerr := e.s.WaitTask(e.ctx, tenant, res.Task.ID, 0); rerr == nil {
			res.Task = cur
		}
		if res.Task.State == core.StateParked {
			e.obs.watch(res.Task.ID)
		}
	}
	// A rejection is an error that carries its task (HTTP's 429 body).
	return api.TaskBody{Task: api.FromTask(&res.Task)}, err
}

type idArgs struct {
	ID string `json:"id"`
}

func (e *engine) task(args []byte) (any, error) {
	var in idArgs
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	t, err := e.s.WaitTask(e.ctx, tenant, in.ID, 0)
	if err != nil {
		return nil, err
	}
	return api.FromTask(&t), nil
}

func (e *engine) heartbeat(args []byte) (any, error) {
	var in struct {
		ID string `json:"id"`
		api.HeartbeatRequest
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	ext, err := optDuration("extend", in.Extend)
	if err != nil {
		return nil, err
	}
	until, err := e.s.Heartbeat(e.ctx, core.HeartbeatRequest{Tenant: tenant, TaskID: in.ID, Lease: in.Lease, Extend: ext})
	if err != nil {
		return nil, err
	}
	return api.HeartbeatResponse{LeaseExpiresAt: until.UTC()}, nil
}

func (e *engine) complete(args []byte) (any, error) {
	var in struct {
		ID string `json:"id"`
		api.CompleteRequest
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	req := core.CompleteRequest{
		Tenant: tenant, TaskID: in.ID, Lease: in.Lease,
		Status: core.State(in.Status), Result: api.RawJSON(in.Result), Error: in.Error,
	}
	if len(req.Result) > core.MaxResultBytes {
		return nil, &api.TooLargeError{Field: "result", Msg: fmt.Sprintf("result must be at most %d bytes, got %d", core.MaxResultBytes, len(req.Result))}
	}
	t, err := e.s.Complete(e.ctx, req)
	if err != nil {
		return nil, err
	}
	return api.FromTask(&t), nil
}

func (e *engine) cancel(args []byte) (any, error) {
	var in idArgs
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	t, err := e.s.Cancel(e.ctx, tenant, in.ID)
	if err != nil {
		return nil, err
	}
	return api.FromTask(&t), nil
}

// mailbox reads one page without waiting: the worker waits, on the
// "mail" notes, so that no call blocks.
func (e *engine) mailbox(args []byte) (any, error) {
	var in struct {
		Recipient string `json:"recipient"`
		After     string `json:"after,omitempty"`
		Limit     int    `json:"limit,omitempty"`
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	after, err := core.ParseCursor(in.After)
	if err != nil {
		return nil, renameField(err, "after")
	}
	if in.Limit < 0 || in.Limit > core.MaxPageLimit {
		return nil, core.Invalid("limit", "limit must be from 1 to %d, got %d", core.MaxPageLimit, in.Limit)
	}
	page, err := e.s.Mailbox(e.ctx, core.MailboxRequest{Tenant: tenant, Recipient: in.Recipient, After: after, Limit: in.Limit})
	if err != nil {
		return nil, err
	}
	out := api.MailboxPage{Messages: make([]api.Message, len(page.Messages)), Next: page.Next.String()}
	for i := range page.Messages {
		out.Messages[i] = api.FromMessage(&page.Messages[i])
	}
	return out, nil
}

func (e *engine) ack(args []byte) (any, error) {
	var in struct {
		Recipient string `json:"recipient"`
		api.AckRequest
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	upTo, err := core.ParseCursor(in.UpTo)
	if err != nil {
		return nil, renameField(err, "upTo")
	}
	if err := e.s.Ack(e.ctx, tenant, in.Recipient, upTo); err != nil {
		return nil, err
	}
	e.store.ackedTo(tenant, in.Recipient, upTo)
	return struct{}{}, nil
}

func (e *engine) audit(args []byte) (any, error) {
	var in struct {
		From  string `json:"from,omitempty"`
		To    string `json:"to,omitempty"`
		Pool  string `json:"pool,omitempty"`
		Task  string `json:"task,omitempty"`
		After string `json:"after,omitempty"`
		Limit int    `json:"limit,omitempty"`
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	q := core.AuditQuery{Tenant: tenant, Pool: in.Pool, TaskID: in.Task, Limit: in.Limit}
	var err error
	if in.From != "" {
		if q.From, err = api.ParseTime("from", in.From); err != nil {
			return nil, err
		}
	}
	if in.To != "" {
		if q.To, err = api.ParseTime("to", in.To); err != nil {
			return nil, err
		}
	}
	if q.After, err = core.ParseAuditCursor(in.After); err != nil {
		return nil, renameField(err, "after")
	}
	page, err := e.s.Audit(e.ctx, q)
	if err != nil {
		return nil, err
	}
	out := api.AuditPage{Events: make([]api.Event, len(page.Events)), Next: page.Next.String()}
	for i := range page.Events {
		out.Events[i] = api.FromEvent(&page.Events[i])
	}
	return out, nil
}

// sweep is the safety net, which the worker runs from a timer.
func (e *engine) sweep([]byte) (any, error) {
	st, err := e.s.Sweep(e.ctx)
	return map[string]int{"expired": st.Expired, "timedOut": st.TimedOut, "resent": st.Resent, "started": st.Started}, err
}

// watch adds the task ids given to those whose start and end are noted:
// the permits of a worker that restarted its bridge.
func (e *engine) watch(args []byte) (any, error) {
	var in struct {
		IDs []string `json:"ids"`
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	for _, id := range in.IDs {
		e.obs.watch(id)
	}
	return struct{}{}, nil
}

// stats returns and clears the wake latencies observed since the last
// call, in microseconds: release of a slot to the commit of the next
// parked task's start, from core's Observer, as the native BenchWake
// measures them.
func (e *engine) stats([]byte) (any, error) {
	w := e.obs.wakes
	e.obs.wakes = nil
	us := make([]float64, len(w))
	for i, d := range w {
		us[i] = float64(d.Nanoseconds()) / 1e3
	}
	return map[string]any{"wakeMicros": us}, nil
}

// benchCore runs n lifecycles (submit, started at once, complete) on core
// directly, without the bridge: beside the worker's benchmark through the
// bridge, it tells the scheduler's cost in wasm from the bridge's.
func (e *engine) benchCore(args []byte) (any, error) {
	var in struct {
		N int `json:"n"`
	}
	if err := decode(args, &in); err != nil {
		return nil, err
	}
	pool := "bench-core-" + newSuffix()
	if err := e.s.PutPool(e.ctx, core.PoolConfig{Name: pool, Capacity: 1 << 20, MaxParked: 1, DefaultMaxWait: time.Hour, RunTimeout: time.Hour}); err != nil {
		return nil, err
	}
	start := time.Now()
	for range in.N {
		res, err := e.s.Submit(e.ctx, core.SubmitRequest{Tenant: tenant, Pool: pool, Recipient: pool})
		if err != nil {
			return nil, err
		}
		if _, err := e.s.Complete(e.ctx, core.CompleteRequest{Tenant: tenant, TaskID: res.Task.ID, Lease: res.Task.Lease, Status: core.StateSucceeded}); err != nil {
			return nil, err
		}
	}
	el := time.Since(start)
	return map[string]any{"n": in.N, "ms": float64(el.Microseconds()) / 1e3, "perSecond": float64(in.N) / el.Seconds()}, nil
}

// persist turns the journal of mailbox messages and audit events on: the
// worker keeps them in IndexedDB from then on.
func (e *engine) persist([]byte) (any, error) {
	e.store.journal = true
	return struct{}{}, nil
}

func (e *engine) drain() *notes {
	n := notes{Started: e.obs.started, Ended: e.obs.ended}
	e.obs.started, e.obs.ended = nil, nil
	n.Mail, n.Keep = e.store.drain()
	if len(n.Started) == 0 && len(n.Ended) == 0 && len(n.Mail) == 0 && n.Keep == nil {
		return nil
	}
	return &n
}

// notes is what a call caused that the worker acts on.
type notes struct {
	// Started and Ended are watched tasks (permits) that started or ended.
	Started []api.Task `json:"started,omitempty"`
	Ended   []api.Task `json:"ended,omitempty"`
	// Mail names the recipients whose mailboxes received messages.
	Mail []string `json:"mail,omitempty"`
	// Keep is what to write to IndexedDB, when persistence is on.
	Keep *journal `json:"keep,omitempty"`
}

// observer is core's Observer: it notes the starts and ends of watched
// tasks and keeps wake latencies. The bridge runs one call at a time, so
// it needs no lock.
type observer struct {
	watched map[string]bool
	started []api.Task
	ended   []api.Task
	wakes   []time.Duration
}

// maxWakes bounds the wake latencies kept between two stats calls.
const maxWakes = 1 << 20

func (o *observer) Started(t *core.Task, wake time.Duration) {
	if wake >= 0 && len(o.wakes) < maxWakes {
		o.wakes = append(o.wakes, wake)
	}
	if o.watched[t.ID] {
		// A permit waits for its start only: its holder ends it.
		delete(o.watched, t.ID)
		o.started = append(o.started, api.FromTask(t))
	}
}

func (o *observer) Ended(t *core.Task) {
	if o.watched[t.ID] {
		delete(o.watched, t.ID)
		o.ended = append(o.ended, api.FromTask(t))
	}
}

func (o *observer) watch(id string) {
	if o.watched == nil {
		o.watched = map[string]bool{}
	}
	o.watched[id] = true
}

// newSuffix returns a short random name part.
func newSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
