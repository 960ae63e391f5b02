-- The first schema of the PostgreSQL store. Times are Unix nanoseconds
-- (bigint): core's times carry nanoseconds and timestamptz keeps
-- microseconds; a zero time is NULL. Durations are nanoseconds too.

-- One row per pool: its configuration and counters (core.Pool).
CREATE TABLE pools (
	name             text PRIMARY KEY,
	capacity         integer NOT NULL,
	max_parked       integer NOT NULL,
	default_max_wait bigint  NOT NULL,
	run_timeout      bigint  NOT NULL,
	slot_shards      integer NOT NULL DEFAULT 0,
	executor         text    NOT NULL DEFAULT '',
	running          integer NOT NULL DEFAULT 0,
	parked           integer NOT NULL DEFAULT 0
);

-- One row per task (core.Task). due_at is Task.DueAt: the sweeper's index.
CREATE TABLE tasks (
	id               text PRIMARY KEY,
	version          bigint  NOT NULL,
	key              text    NOT NULL,
	tenant           text    NOT NULL,
	pool             text    NOT NULL,
	recipient        text    NOT NULL,
	state            text    NOT NULL,
	payload          bytea,
	submitted_at     bigint,
	deadline         bigint,
	run_timeout      bigint  NOT NULL,
	started_at       bigint,
	lease            text    NOT NULL,
	lease_expires_at bigint,
	ended_at         bigint,
	result           bytea,
	error            text    NOT NULL,
	body_hash        text    NOT NULL,
	unsent           boolean NOT NULL,
	due_at           bigint
);
-- Partial indexes: only non-terminal tasks are due, only parked tasks
-- whose queue message may be missing are unsent, so both stay as small as
-- the live work however many tasks have ended.
CREATE INDEX tasks_due ON tasks (due_at, id) WHERE due_at IS NOT NULL;
CREATE INDEX tasks_unsent ON tasks (id) WHERE unsent;

-- Idempotency keys, per tenant.
CREATE TABLE keys (
	tenant    text NOT NULL,
	key       text NOT NULL,
	task_id   text NOT NULL,
	body_hash text NOT NULL,
	PRIMARY KEY (tenant, key)
);

-- One head row per mailbox: seq is the last cursor given, acked the
-- acknowledged one. A commit takes its messages' cursors by updating seq,
-- which holds the row until it commits: a message committed after a read
-- that returned cursor c gets a cursor above c (a sequence would hand out
-- numbers before commit, in another order than commits land).
CREATE TABLE mailboxes (
	tenant    text   NOT NULL,
	recipient text   NOT NULL,
	seq       bigint NOT NULL,
	acked     bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, recipient)
);

CREATE TABLE messages (
	tenant    text   NOT NULL,
	recipient text   NOT NULL,
	cursor    bigint NOT NULL,
	task_id   text   NOT NULL,
	pool      text   NOT NULL,
	type      text   NOT NULL,
	-- On started: what a worker needs to run the task.
	key              text   NOT NULL,
	payload          bytea,
	deadline         bigint,
	lease            text   NOT NULL,
	lease_expires_at bigint,
	-- On an outcome.
	result    bytea,
	error     text   NOT NULL,
	at        bigint NOT NULL,
	PRIMARY KEY (tenant, recipient, cursor)
);
CREATE INDEX messages_at ON messages (at);

-- The audit trail, read by tenant and time: the primary key is the index
-- of every query (a tenant's range of at, then seq), so a 24-hour window
-- reads only its own rows however large the table grows. Purge deletes by
-- time through events_at.
CREATE TABLE events (
	tenant     text   NOT NULL,
	at         bigint NOT NULL,
	seq        bigint GENERATED ALWAYS AS IDENTITY,
	pool       text   NOT NULL,
	task_id    text   NOT NULL,
	type       text   NOT NULL,
	from_state text   NOT NULL,
	to_state   text   NOT NULL,
	detail     text   NOT NULL,
	PRIMARY KEY (tenant, at, seq)
);
CREATE INDEX events_at ON events (at);

-- The parking queue, pgmq-style: a row per message, hidden until
-- visible_at once received; receipts counts deliveries, so that a receipt
-- (id, receipts) of an earlier delivery deletes or releases nothing.
-- id is the send order: FIFO within a tenant.
CREATE TABLE queue (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pool       text    NOT NULL,
	tenant     text    NOT NULL,
	task_id    text    NOT NULL,
	deadline   bigint,
	visible_at bigint  NOT NULL DEFAULT 0,
	receipts   integer NOT NULL DEFAULT 0
);
CREATE INDEX queue_line ON queue (pool, tenant, id);

-- Round-robin between a pool's tenants: served is when the tenant was
-- last served (a per-pool count of deliveries); a receive takes tenants
-- least recently served first.
CREATE TABLE queue_turns (
	pool   text   NOT NULL,
	tenant text   NOT NULL,
	served bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (pool, tenant)
);

-- commit_pool applies a transaction's pool counters on the pool row,
-- locked, if its conditions hold; otherwise it raises, naming the row as it
-- was in the detail (running parked capacity max_parked), from which the
-- store has core's Txn.CheckPool name the failed condition.
CREATE FUNCTION commit_pool(p_name text, p_run integer, p_park integer, p_slot boolean, p_first boolean, p_room boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	r pools%ROWTYPE;
BEGIN
	SELECT * INTO r FROM pools WHERE name = p_name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pool % not found', p_name USING ERRCODE = 'PLP01';
	END IF;
	IF (p_slot AND r.running + p_run > r.capacity) OR (p_first AND r.parked > 0) OR (p_room AND r.parked >= r.max_parked) THEN
		RAISE EXCEPTION 'pool % condition failed', p_name USING ERRCODE = 'PLP02',
			DETAIL = format('%s %s %s %s', r.running, r.parked, r.capacity, r.max_parked);
	END IF;
	UPDATE pools SET running = running + p_run, parked = parked + p_park WHERE name = p_name;
END $$;

-- commit_one applies one transition (core.Txn, as JSON: see commit.go)
-- or raises, naming the first condition that failed in core's order:
-- PLT01 (a task's compare-and-set; detail: the stored version, 0 for
-- none), PLK01 (the idempotency key exists), PLP01 / PLP02 (commit_pool).
-- Mailbox head rows exist and are locked already (commit_many).
CREATE FUNCTION commit_one(txn jsonb, channel text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t   record;
	m   record;
	v   bigint;
	cur bigint;
BEGIN
	FOR t IN SELECT * FROM jsonb_to_recordset(coalesce(txn->'tasks', '[]')) AS x(
		id text, expect bigint, key text, tenant text, pool text, recipient text, state text, payload text,
		submitted_at bigint, deadline bigint, run_timeout bigint, started_at bigint, lease text,
		lease_expires_at bigint, ended_at bigint, result text, error text, body_hash text, unsent boolean, due_at bigint)
	LOOP
		IF t.expect = 0 THEN
			INSERT INTO tasks (id, version, key, tenant, pool, recipient, state, payload, submitted_at, deadline,
				run_timeout, started_at, lease, lease_expires_at, ended_at, result, error, body_hash, unsent, due_at)
			VALUES (t.id, 1, t.key, t.tenant, t.pool, t.recipient, t.state, decode(t.payload, 'base64'), t.submitted_at,
				t.deadline, t.run_timeout, t.started_at, t.lease, t.lease_expires_at, t.ended_at,
				decode(t.result, 'base64'), t.error, t.body_hash, t.unsent, t.due_at)
			ON CONFLICT (id) DO NOTHING;
		ELSE
			UPDATE tasks SET version = t.expect + 1, key = t.key, tenant = t.tenant, pool = t.pool,
				recipient = t.recipient, state = t.state, payload = decode(t.payload, 'base64'),
				submitted_at = t.submitted_at, deadline = t.deadline, run_timeout = t.run_timeout,
				started_at = t.started_at, lease = t.lease, lease_expires_at = t.lease_expires_at,
				ended_at = t.ended_at, result = decode(t.result, 'base64'), error = t.error,
				body_hash = t.body_hash, unsent = t.unsent, due_at = t.due_at
			WHERE id = t.id AND version = t.expect;
		END IF;
		IF NOT FOUND THEN
			SELECT x.version INTO v FROM tasks x WHERE x.id = t.id;
			RAISE EXCEPTION 'task % version conflict', t.id USING ERRCODE = 'PLT01', DETAIL = coalesce(v, 0)::text;
		END IF;
	END LOOP;

	IF txn ? 'key' THEN
		INSERT INTO keys (tenant, key, task_id, body_hash)
		VALUES (txn->'key'->>'tenant', txn->'key'->>'key', txn->'key'->>'taskId', txn->'key'->>'bodyHash')
		ON CONFLICT DO NOTHING;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'idempotency key exists' USING ERRCODE = 'PLK01';
		END IF;
	END IF;

	INSERT INTO events (tenant, at, pool, task_id, type, from_state, to_state, detail)
	SELECT e.tenant, e.at, e.pool, e.task_id, e.type, e.from_state, e.to_state, e.detail
	FROM jsonb_to_recordset(coalesce(txn->'events', '[]')) AS e(
		tenant text, at bigint, pool text, task_id text, type text, from_state text, to_state text, detail text);

	FOR m IN SELECT * FROM jsonb_to_recordset(coalesce(txn->'messages', '[]')) AS x(
		tenant text, recipient text, task_id text, pool text, type text, key text, payload text, deadline bigint,
		lease text, lease_expires_at bigint, result text, error text, at bigint, notify text)
	LOOP
		UPDATE mailboxes b SET seq = b.seq + 1 WHERE b.tenant = m.tenant AND b.recipient = m.recipient
		RETURNING b.seq INTO cur;
		INSERT INTO messages (tenant, recipient, cursor, task_id, pool, type, key, payload, deadline, lease,
			lease_expires_at, result, error, at)
		VALUES (m.tenant, m.recipient, cur, m.task_id, m.pool, m.type, m.key, decode(m.payload, 'base64'), m.deadline,
			m.lease, m.lease_expires_at, decode(m.result, 'base64'), m.error, m.at);
		-- Delivered by the server after the commit, and dropped with this
		-- transition if it rolls back.
		PERFORM pg_notify(channel, m.notify);
	END LOOP;

	IF txn ? 'pool' THEN
		PERFORM commit_pool(txn->>'pool', (txn->>'run')::integer, (txn->>'park')::integer,
			(txn->>'slot')::boolean, (txn->>'first')::boolean, (txn->>'room')::boolean);
	END IF;
END $$;

-- commit_many commits a group of transitions in one transaction, each in a
-- subtransaction of its own: one that fails rolls back alone and reports
-- its error, the others commit together, sharing one WAL flush and one
-- hold of each hot row (a pool's, a mailbox's) instead of one each. It
-- first locks every row the group will update, in one global order (tasks
-- by id, mailbox heads, pools by name): two groups never deadlock. It
-- returns one element per transition: {} or {code, message, detail}.
CREATE FUNCTION commit_many(p jsonb, channel text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	txn jsonb;
	out jsonb := '[]';
	c   text;
	msg text;
	det text;
BEGIN
	PERFORM 1 FROM tasks x WHERE x.id IN (SELECT jsonb_array_elements_text(p->'tasks')) ORDER BY x.id FOR UPDATE;
	INSERT INTO mailboxes (tenant, recipient, seq)
	SELECT b.tenant, b.recipient, 0 FROM jsonb_to_recordset(coalesce(p->'boxes', '[]')) AS b(tenant text, recipient text)
	ORDER BY b.tenant, b.recipient
	ON CONFLICT DO NOTHING;
	PERFORM 1 FROM mailboxes x
	WHERE (x.tenant, x.recipient) IN (SELECT b.tenant, b.recipient FROM jsonb_to_recordset(coalesce(p->'boxes', '[]')) AS b(tenant text, recipient text))
	ORDER BY x.tenant, x.recipient FOR UPDATE;
	PERFORM 1 FROM pools x WHERE x.name IN (SELECT jsonb_array_elements_text(p->'pools')) ORDER BY x.name FOR UPDATE;

	FOR txn IN SELECT jsonb_array_elements(p->'txns') LOOP
		BEGIN
			PERFORM commit_one(txn, channel);
			out := out || jsonb_build_array('{}'::jsonb);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS c = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
			out := out || jsonb_build_array(jsonb_build_object('code', c, 'message', msg, 'detail', det));
		END;
	END LOOP;
	RETURN out;
END $$;

-- queue_receive delivers up to p_max visible messages of a pool: tenants
-- least recently served first, each tenant's messages in send order, the
-- k-th message of every tenant before the (k+1)-th of any. Each message is
-- hidden until p_until and its delivery counted. Rows another receiver
-- holds are skipped, not waited for; so are turn rows. Committed without
-- waiting for the WAL flush (see below).
CREATE FUNCTION queue_receive(p_pool text, p_now bigint, p_until bigint, p_max integer)
RETURNS TABLE (id bigint, task_id text, tenant text, deadline bigint, receipts integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	top bigint;
	k   integer := 0;
	r   record;
BEGIN
	-- A delivery lost to a crash only delivers the message again (consumers
	-- are idempotent), so its commit need not wait for the WAL flush; the
	-- next synchronous commit flushes it with everything before it.
	PERFORM set_config('synchronous_commit', 'off', true);
	SELECT coalesce(max(t.served), 0) INTO top FROM queue_turns t WHERE t.pool = p_pool;
	FOR r IN
		WITH cand AS (
			SELECT h.id, t.tenant, h.rn, t.served
			FROM queue_turns t
			CROSS JOIN LATERAL (
				SELECT q.id, row_number() OVER (ORDER BY q.id) AS rn
				FROM queue q
				WHERE q.pool = t.pool AND q.tenant = t.tenant AND q.visible_at <= p_now
				ORDER BY q.id
				LIMIT p_max
			) h
			WHERE t.pool = p_pool
			ORDER BY h.rn, t.served, h.id
			LIMIT p_max
		), locked AS (
			SELECT q.id FROM queue q WHERE q.id IN (SELECT c.id FROM cand c) AND q.visible_at <= p_now
			FOR UPDATE SKIP LOCKED
		), upd AS (
			UPDATE queue q SET visible_at = p_until, receipts = q.receipts + 1
			FROM locked l WHERE q.id = l.id
			RETURNING q.id, q.task_id, q.tenant, q.deadline, q.receipts
		)
		SELECT u.* FROM upd u JOIN cand c ON c.id = u.id ORDER BY c.rn, c.served, c.id
	LOOP
		k := k + 1;
		id := r.id; task_id := r.task_id; tenant := r.tenant; deadline := r.deadline; receipts := r.receipts;
		RETURN NEXT;
		UPDATE queue_turns t SET served = top + k
		WHERE (t.pool, t.tenant) IN (
			SELECT x.pool, x.tenant FROM queue_turns x
			WHERE x.pool = p_pool AND x.tenant = r.tenant FOR UPDATE SKIP LOCKED);
	END LOOP;
END $$;
