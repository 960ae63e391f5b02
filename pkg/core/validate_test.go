package core

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// noBackend is a Backend with no implementation: any call panics, so a test
// using it shows that validation rejected the request before any I/O.
type noBackend struct{ Backend }

type testBundle struct {
	ctx   context.Context
	clock *StubClock
	s     *Scheduler
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	clock := NewStubClock(t0)
	s, err := New(Config{Backend: noBackend{}, Clock: clock})
	require.NoError(t, err)
	return &testBundle{ctx: t.Context(), clock: clock, s: s}
}

// requireField asserts that err is an *InvalidError naming field and
// matching ErrInvalid.
func requireField(t *testing.T, err error, field string) {
	t.Helper()
	require.ErrorIs(t, err, ErrInvalid)
	var ie *InvalidError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, field, ie.Field, "error %q", err)
	require.Contains(t, err.Error(), field)
}

func TestSubmitRequestValidate(t *testing.T) {
	t.Parallel()
	big := json.RawMessage(`"` + strings.Repeat("x", MaxPayloadBytes-2) + `"`)
	require.Len(t, big, MaxPayloadBytes)
	bad := map[string]struct {
		req   SubmitRequest
		field string
	}{
		"no tenant":            {SubmitRequest{Pool: "p"}, "tenant"},
		"long tenant":          {SubmitRequest{Tenant: strings.Repeat("t", maxRecipientLen+1)}, "tenant"},
		"long key":             {SubmitRequest{Tenant: "a", Key: strings.Repeat("k", maxKeyLen+1)}, "key"},
		"long recipient":       {SubmitRequest{Tenant: "a", Recipient: strings.Repeat("r", maxRecipientLen+1)}, "recipient"},
		"large payload":        {SubmitRequest{Tenant: "a", Payload: append(json.RawMessage(`"x`), big...)}, "payload"},
		"payload not JSON":     {SubmitRequest{Tenant: "a", Payload: json.RawMessage(`{"a":`)}, "payload"},
		"maxWait and deadline": {SubmitRequest{Tenant: "a", MaxWait: time.Minute, Deadline: t0.Add(time.Hour)}, "maxWait"},
		"negative maxWait":     {SubmitRequest{Tenant: "a", MaxWait: -time.Second}, "maxWait"},
		"long maxWait":         {SubmitRequest{Tenant: "a", MaxWait: MaxWaitLimit + time.Nanosecond}, "maxWait"},
		"deadline now":         {SubmitRequest{Tenant: "a", Deadline: t0}, "deadline"},
		"deadline past":        {SubmitRequest{Tenant: "a", Deadline: t0.Add(-time.Hour)}, "deadline"},
		"deadline far":         {SubmitRequest{Tenant: "a", Deadline: t0.Add(MaxWaitLimit + time.Nanosecond)}, "deadline"},
		"negative runTimeout":  {SubmitRequest{Tenant: "a", RunTimeout: -time.Second}, "runTimeout"},
		"long runTimeout":      {SubmitRequest{Tenant: "a", RunTimeout: MaxRunTimeout + time.Nanosecond}, "runTimeout"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			requireField(t, req.validate(t0), tc.field)
			// Through the scheduler too, before any backend call.
			tb := setup(t)
			_, err := tb.s.Submit(tb.ctx, tc.req)
			requireField(t, err, tc.field)
		})
	}
	good := map[string]SubmitRequest{
		"minimal":          {Tenant: "a"},
		"longest key":      {Tenant: "a", Key: strings.Repeat("k", maxKeyLen)},
		"largest payload":  {Tenant: "a", Payload: big},
		"longest maxWait":  {Tenant: "a", MaxWait: MaxWaitLimit},
		"furthest":         {Tenant: "a", Deadline: t0.Add(MaxWaitLimit)},
		"soonest":          {Tenant: "a", Deadline: t0.Add(time.Nanosecond)},
		"longest run":      {Tenant: "a", RunTimeout: MaxRunTimeout},
		"longest tenant":   {Tenant: strings.Repeat("t", maxRecipientLen), Recipient: strings.Repeat("r", maxRecipientLen)},
		"payload JSON nil": {Tenant: "a", Payload: json.RawMessage(`null`)},
	}
	for name, req := range good {
		require.NoError(t, req.validate(t0), name)
	}
}

func TestCompleteValidation(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ok := CompleteRequest{Tenant: "a", TaskID: "x", Lease: "l", Status: StateSucceeded}
	cases := map[string]struct {
		edit  func(*CompleteRequest)
		field string
	}{
		"no lease":       {func(r *CompleteRequest) { r.Lease = "" }, "lease"},
		"status running": {func(r *CompleteRequest) { r.Status = StateRunning }, "status"},
		"status empty":   {func(r *CompleteRequest) { r.Status = "" }, "status"},
		"status expired": {func(r *CompleteRequest) { r.Status = StateExpired }, "status"},
		"result large":   {func(r *CompleteRequest) { r.Result = make(json.RawMessage, MaxResultBytes+1) }, "result"},
		"result bad":     {func(r *CompleteRequest) { r.Result = json.RawMessage(`[1,`) }, "result"},
		"error long":     {func(r *CompleteRequest) { r.Error = strings.Repeat("e", maxErrorLen+1) }, "error"},
	}
	for name, tc := range cases {
		req := ok
		tc.edit(&req)
		_, err := tb.s.Complete(tb.ctx, req)
		require.ErrorIs(t, err, ErrInvalid, name)
		requireField(t, err, tc.field)
	}
	require.NoError(t, ok.validate())
	failed := ok
	failed.Status = StateFailed
	failed.Error = strings.Repeat("e", maxErrorLen)
	require.NoError(t, failed.validate())
}

func TestHeartbeatValidation(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	for field, req := range map[string]HeartbeatRequest{
		"lease":  {Tenant: "a", TaskID: "x"},
		"extend": {Tenant: "a", TaskID: "x", Lease: "l", Extend: -time.Second},
	} {
		_, err := tb.s.Heartbeat(tb.ctx, req)
		requireField(t, err, field)
	}
	_, err := tb.s.Heartbeat(tb.ctx, HeartbeatRequest{Tenant: "a", TaskID: "x", Lease: "l", Extend: MaxRunTimeout + 1})
	requireField(t, err, "extend")
}

func TestMailboxAndAuditValidation(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	mailbox := map[string]MailboxRequest{
		"tenant":    {Recipient: "r"},
		"recipient": {Tenant: "a"},
		"limit":     {Tenant: "a", Recipient: "r", Limit: MaxPageLimit + 1},
		"wait":      {Tenant: "a", Recipient: "r", Wait: MaxMailboxWait + time.Millisecond},
	}
	for field, req := range mailbox {
		_, err := tb.s.Mailbox(tb.ctx, req)
		requireField(t, err, field)
	}
	_, err := tb.s.Mailbox(tb.ctx, MailboxRequest{Tenant: "a", Recipient: strings.Repeat("r", maxRecipientLen+1)})
	requireField(t, err, "recipient")
	_, err = tb.s.Mailbox(tb.ctx, MailboxRequest{Tenant: "a", Recipient: "r", Limit: -1})
	requireField(t, err, "limit")
	_, err = tb.s.Mailbox(tb.ctx, MailboxRequest{Tenant: "a", Recipient: "r", Wait: -time.Second})
	requireField(t, err, "wait")

	requireField(t, tb.s.Ack(tb.ctx, "a", "r", 0), "upTo")
	requireField(t, tb.s.Ack(tb.ctx, "", "r", 1), "tenant")
	requireField(t, tb.s.Ack(tb.ctx, "a", "", 1), "recipient")

	audit := map[string]AuditQuery{
		"tenant": {From: t0, To: t0.Add(time.Hour)},
		"from":   {Tenant: "a", From: t0, To: t0},
		"to":     {Tenant: "a", From: t0, To: t0.Add(MaxAuditRange + time.Nanosecond)},
		"limit":  {Tenant: "a", From: t0, To: t0.Add(time.Hour), Limit: MaxPageLimit + 1},
	}
	for field, q := range audit {
		_, err := tb.s.Audit(tb.ctx, q)
		requireField(t, err, field)
	}
	_, err = tb.s.Audit(tb.ctx, AuditQuery{Tenant: "a", From: t0.Add(time.Hour), To: t0})
	requireField(t, err, "from")

	// Times outside what stores represent are refused, not taken for absent
	// nor handed on.
	before := MinTime.Add(-time.Nanosecond)
	for field, q := range map[string]AuditQuery{
		"from": {Tenant: "a", From: before, To: MinTime.Add(time.Hour)},
		"to":   {Tenant: "a", From: MaxTime.Add(-time.Hour), To: MaxTime.Add(time.Nanosecond)},
	} {
		_, err := tb.s.Audit(tb.ctx, q)
		requireField(t, err, field)
	}
}

// TestAuditDefaultFromStopsAtMinTime: a To near MinTime leaves the default
// From at MinTime rather than before it.
func TestAuditDefaultFromStopsAtMinTime(t *testing.T) {
	t.Parallel()
	var got AuditQuery
	s, err := New(Config{Backend: auditSpy{q: &got}, Clock: NewStubClock(t0)})
	require.NoError(t, err)
	_, err = s.Audit(t.Context(), AuditQuery{Tenant: "a", To: MinTime.Add(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, MinTime, got.From)
}

// auditSpy records the audit query a store is asked.
type auditSpy struct {
	Backend
	q *AuditQuery
}

func (a auditSpy) Events(_ context.Context, q AuditQuery) ([]Event, error) {
	*a.q = q
	return nil, nil
}

func TestPoolConfigValidate(t *testing.T) {
	t.Parallel()
	ok := PoolConfig{Name: "gpu-a_1.x", Capacity: 1, MaxParked: 0, DefaultMaxWait: time.Second, RunTimeout: time.Second}
	require.NoError(t, ok.Validate())
	cases := map[string]func(*PoolConfig){
		"name":           func(c *PoolConfig) { c.Name = "" },
		"capacity":       func(c *PoolConfig) { c.Capacity = 0 },
		"maxParked":      func(c *PoolConfig) { c.MaxParked = -1 },
		"defaultMaxWait": func(c *PoolConfig) { c.DefaultMaxWait = 0 },
		"runTimeout":     func(c *PoolConfig) { c.RunTimeout = -time.Second },
	}
	for field, edit := range cases {
		c := ok
		edit(&c)
		requireField(t, c.Validate(), field)
	}
	for _, name := range []string{"a b", "a/b", "ä", strings.Repeat("n", 65), "a\x00"} {
		c := ok
		c.Name = name
		requireField(t, c.Validate(), "name")
	}
	c := ok
	c.Name = strings.Repeat("n", 64)
	require.NoError(t, c.Validate())

	// Through the scheduler, before any backend call.
	tb := setup(t)
	bad := ok
	bad.Capacity = -3
	requireField(t, tb.s.PutPool(tb.ctx, bad), "capacity")
}

func TestBodyHash(t *testing.T) {
	t.Parallel()
	pool := PoolConfig{Name: "p", DefaultMaxWait: time.Minute, RunTimeout: time.Hour}
	base := SubmitRequest{Tenant: "acme", Pool: "p", Key: "k", Recipient: "r", Payload: json.RawMessage(`{"a":1,"b":[true,null,"x"]}`), MaxWait: 2 * time.Minute, RunTimeout: 2 * time.Hour}
	h := base.bodyHash(pool)
	require.True(t, strings.HasPrefix(h, bodyHashVersion), h)
	require.Len(t, h, len(bodyHashVersion)+32)
	again := base
	require.Equal(t, h, again.bodyHash(pool), "deterministic")

	// What does not change the body: the key and the tenant (they identify
	// the request), the payload's spacing, member order and escapes, and
	// naming the pool's defaults.
	same := map[string]func(*SubmitRequest){
		"key and tenant": func(r *SubmitRequest) { r.Key, r.Tenant = "other", "globex" },
		"spacing": func(r *SubmitRequest) {
			r.Payload = json.RawMessage(" {\n \"a\" : 1 ,\t\"b\":[ true, null ,\"x\" ] } ")
		},
		"member order": func(r *SubmitRequest) { r.Payload = json.RawMessage(`{"b":[true,null,"x"],"a":1}`) },
		"escapes":      func(r *SubmitRequest) { r.Payload = json.RawMessage(`{"\u0061":1,"b":[true,null,"\u0078"]}`) },
	}
	for name, edit := range same {
		r := base
		edit(&r)
		require.Equal(t, h, r.bodyHash(pool), name)
	}
	defaults := SubmitRequest{Pool: "p", Recipient: "r"}
	named := defaults
	named.MaxWait, named.RunTimeout = pool.DefaultMaxWait, pool.RunTimeout
	require.Equal(t, defaults.bodyHash(pool), named.bodyHash(pool), "the pool's defaults, named or not")
	null := defaults
	null.Payload = json.RawMessage(` null `)
	require.Equal(t, defaults.bodyHash(pool), null.bodyHash(pool), "a null payload is no payload")

	edits := map[string]func(*SubmitRequest){
		"pool":              func(r *SubmitRequest) { r.Pool = "q" },
		"recipient":         func(r *SubmitRequest) { r.Recipient = "s" },
		"payload":           func(r *SubmitRequest) { r.Payload = json.RawMessage(`{"a":2,"b":[true,null,"x"]}`) },
		"number as written": func(r *SubmitRequest) { r.Payload = json.RawMessage(`{"a":1.0,"b":[true,null,"x"]}`) },
		"array order":       func(r *SubmitRequest) { r.Payload = json.RawMessage(`{"a":1,"b":[null,true,"x"]}`) },
		"member twice":      func(r *SubmitRequest) { r.Payload = json.RawMessage(`{"a":1,"a":1,"b":[true,null,"x"]}`) },
		"no payload":        func(r *SubmitRequest) { r.Payload = nil },
		"maxWait":           func(r *SubmitRequest) { r.MaxWait = 3 * time.Minute },
		"default maxWait":   func(r *SubmitRequest) { r.MaxWait = 0 },
		"deadline":          func(r *SubmitRequest) { r.MaxWait = 0; r.Deadline = t0 },
		"runTimeout":        func(r *SubmitRequest) { r.RunTimeout = 0 },
	}
	seen := map[string]string{h: "base"}
	for name, edit := range edits {
		r := base
		edit(&r)
		got := r.bodyHash(pool)
		prev, dup := seen[got]
		require.False(t, dup, "%s hashes like %s", name, prev)
		seen[got] = name
	}
	// A deadline is not a maxWait that would end at the same instant.
	w := SubmitRequest{Pool: "p", MaxWait: time.Minute}
	d := SubmitRequest{Pool: "p", Deadline: t0.Add(time.Minute)}
	require.NotEqual(t, w.bodyHash(pool), d.bodyHash(pool))

	// Fields are length-prefixed: moving bytes between them changes the hash.
	a := SubmitRequest{Pool: "ab", Recipient: "c"}
	b := SubmitRequest{Pool: "a", Recipient: "bc"}
	require.NotEqual(t, a.bodyHash(pool), b.bodyHash(pool))

	// A deadline is one instant, whatever its zone.
	d1 := SubmitRequest{Pool: "p", Deadline: t0}
	d2 := SubmitRequest{Pool: "p", Deadline: t0.In(time.FixedZone("x", 3600))}
	require.Equal(t, d1.bodyHash(pool), d2.bodyHash(pool))
}

// TestLegacyBodyHash: a key stored before the canonical hash holds the hash
// of the raw fields; a retry that repeats them replays it, another does not.
func TestLegacyBodyHash(t *testing.T) {
	t.Parallel()
	pool := PoolConfig{Name: "p", DefaultMaxWait: time.Minute, RunTimeout: time.Hour}
	req := SubmitRequest{Tenant: "acme", Pool: "p", Key: "k", Recipient: "r", Payload: json.RawMessage(`{"a":1}`), MaxWait: time.Minute}
	// The hash as it was computed for this request before: 16 bytes of
	// SHA-256 over the length-prefixed pool, recipient, raw payload,
	// maxWait and runTimeout as given, and no deadline.
	const stored = "6e9091f22c73a0f4066a4257520be1bb"
	require.Equal(t, stored, req.legacyBodyHash())
	require.True(t, req.sameBody(stored, req.bodyHash(pool)))
	spaced := req
	spaced.Payload = json.RawMessage(`{"a": 1}`)
	require.False(t, spaced.sameBody(stored, spaced.bodyHash(pool)), "a stored raw hash compares raw fields")
	require.True(t, spaced.sameBody(req.bodyHash(pool), spaced.bodyHash(pool)))
	require.False(t, req.sameBody(bodyHashVersion+stored, req.bodyHash(pool)))
}

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	require.Equal(t, SystemClock{}, c.Clock)
	require.NotNil(t, c.Logger)
	require.Equal(t, 30*time.Second, c.OutboxGrace)
	require.Equal(t, 7*24*time.Hour, c.MailboxRetention)
	require.Equal(t, 30*24*time.Hour, c.AuditRetention)
	require.Equal(t, time.Minute, c.PurgeEvery)
	require.Equal(t, 5*time.Minute, c.ReconcileEvery)
	require.Equal(t, 100*time.Millisecond, c.MailboxPoll)
	require.Nil(t, c.Wake)
	require.Nil(t, c.Observer)

	clock := NewStubClock(t0)
	set := Config{Clock: clock, OutboxGrace: time.Second, MailboxRetention: time.Hour, AuditRetention: 2 * time.Hour, PurgeEvery: 3 * time.Second, ReconcileEvery: 4 * time.Second, MailboxPoll: time.Millisecond}
	got := set.WithDefaults()
	require.Same(t, clock, got.Clock)
	require.Equal(t, set.OutboxGrace, got.OutboxGrace)
	require.Equal(t, set.MailboxRetention, got.MailboxRetention)
	require.Equal(t, set.AuditRetention, got.AuditRetention)
	require.Equal(t, set.PurgeEvery, got.PurgeEvery)
	require.Equal(t, set.ReconcileEvery, got.ReconcileEvery)
	require.Equal(t, set.MailboxPoll, got.MailboxPoll)
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := New(Config{})
	require.ErrorContains(t, err, "Backend")
	cases := map[string]func(*Config){
		"OutboxGrace":      func(c *Config) { c.OutboxGrace = -1 },
		"MailboxRetention": func(c *Config) { c.MailboxRetention = -1 },
		"AuditRetention":   func(c *Config) { c.AuditRetention = -1 },
		"PurgeEvery":       func(c *Config) { c.PurgeEvery = -1 },
		"MailboxPoll":      func(c *Config) { c.MailboxPoll = -1 },
	}
	for field, edit := range cases {
		c := Config{Backend: noBackend{}}
		edit(&c)
		_, err := New(c)
		require.ErrorContains(t, err, "Config."+field)
	}
	s, err := New(Config{Backend: noBackend{}})
	require.NoError(t, err)
	require.Equal(t, SystemClock{}, s.Clock())
}

func TestStateAndDueAt(t *testing.T) {
	t.Parallel()
	for _, s := range []State{StateSucceeded, StateFailed, StateExpired, StateRejected, StateCancelled, StateTimedOut} {
		require.True(t, s.Terminal(), s)
	}
	for _, s := range []State{StateParked, StateRunning, ""} {
		require.False(t, s.Terminal(), s)
	}
	task := Task{State: StateParked, Deadline: t0, LeaseExpiresAt: t0.Add(time.Hour)}
	require.Equal(t, t0, task.DueAt())
	task.State = StateRunning
	require.Equal(t, t0.Add(time.Hour), task.DueAt())
	task.State = StateSucceeded
	require.True(t, task.DueAt().IsZero())
}

func TestStubClock(t *testing.T) {
	t.Parallel()
	c := NewStubClock(t0.In(time.FixedZone("x", 3600)))
	require.Equal(t, time.UTC, c.Now().Location())
	require.True(t, c.Now().Equal(t0))
	c.Advance(time.Second)
	require.True(t, c.Now().Equal(t0.Add(time.Second)))
	c.Set(t0)
	require.True(t, c.Now().Equal(t0))
	require.Equal(t, time.UTC, SystemClock{}.Now().Location())
}

func TestInvalidError(t *testing.T) {
	t.Parallel()
	err := Invalid("limit", "limit must be 1-%d", 5)
	require.EqualError(t, err, "invalid limit: limit must be 1-5")
	require.True(t, errors.Is(err, ErrInvalid))
	require.False(t, errors.Is(err, ErrNotFound))
	require.EqualError(t, &InvalidError{Reason: "bad"}, "invalid request: bad")
}
