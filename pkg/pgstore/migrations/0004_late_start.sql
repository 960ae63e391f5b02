-- A parked task never starts at or after its deadline, also when the
-- audit order (0003) moves its start later: commit_one refuses, with
-- SQLSTATE PLT02 (core.ErrLateStart), a transition whose stamp it would
-- raise so far that a start it makes (started_at, shift bit 2) lands at or
-- after the task's deadline; the transition rolls back, nothing of it
-- written, and core expires the task instead. commit_one is 0003's with
-- that last condition.

CREATE OR REPLACE FUNCTION commit_one(txn jsonb, channel text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	t   record;
	m   record;
	v   bigint;
	cur bigint;
	stamp bigint := (txn->>'at')::bigint;
	d     bigint := 0;
	late  text;
BEGIN
	-- The pool's row is locked already (commit_many): no transition of the
	-- pool commits between this read and this transition's commit.
	IF txn ? 'pool' AND stamp IS NOT NULL THEN
		SELECT greatest(x.last_at - stamp, 0) INTO d FROM pools x WHERE x.name = txn->>'pool';
		d := coalesce(d, 0);
	END IF;

	FOR t IN SELECT * FROM jsonb_to_recordset(coalesce(txn->'tasks', '[]')) AS x(
		id text, expect bigint, key text, tenant text, pool text, recipient text, state text, payload text,
		submitted_at bigint, deadline bigint, run_timeout bigint, started_at bigint, lease text,
		lease_expires_at bigint, ended_at bigint, result text, error text, body_hash text, unsent boolean, due_at bigint,
		push_at bigint, push_attempts integer, shift integer)
	LOOP
		t.submitted_at := stamped(t.submitted_at, t.shift, 1, d);
		t.started_at := stamped(t.started_at, t.shift, 2, d);
		t.lease_expires_at := stamped(t.lease_expires_at, t.shift, 4, d);
		t.ended_at := stamped(t.ended_at, t.shift, 8, d);
		t.push_at := stamped(t.push_at, t.shift, 16, d);
		t.due_at := stamped(t.due_at, t.shift, 32, d);
		IF t.expect = 0 THEN
			INSERT INTO tasks (id, version, key, tenant, pool, recipient, state, payload, submitted_at, deadline,
				run_timeout, started_at, lease, lease_expires_at, ended_at, result, error, body_hash, unsent, due_at,
				push_at, push_attempts)
			VALUES (t.id, 1, t.key, t.tenant, t.pool, t.recipient, t.state, decode(t.payload, 'base64'), t.submitted_at,
				t.deadline, t.run_timeout, t.started_at, t.lease, t.lease_expires_at, t.ended_at,
				decode(t.result, 'base64'), t.error, t.body_hash, t.unsent, t.due_at, t.push_at, coalesce(t.push_attempts, 0))
			ON CONFLICT (id) DO NOTHING;
		ELSE
			UPDATE tasks SET version = t.expect + 1, key = t.key, tenant = t.tenant, pool = t.pool,
				recipient = t.recipient, state = t.state, payload = decode(t.payload, 'base64'),
				submitted_at = t.submitted_at, deadline = t.deadline, run_timeout = t.run_timeout,
				started_at = t.started_at, lease = t.lease, lease_expires_at = t.lease_expires_at,
				ended_at = t.ended_at, result = decode(t.result, 'base64'), error = t.error,
				body_hash = t.body_hash, unsent = t.unsent, due_at = t.due_at,
				push_at = t.push_at, push_attempts = coalesce(t.push_attempts, 0)
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
	SELECT e.tenant, stamped(e.at, e.shift, 1, d), e.pool, e.task_id, e.type, e.from_state, e.to_state, e.detail
	FROM jsonb_to_recordset(coalesce(txn->'events', '[]')) AS e(
		tenant text, at bigint, pool text, task_id text, type text, from_state text, to_state text, detail text,
		shift integer);

	FOR m IN SELECT * FROM jsonb_to_recordset(coalesce(txn->'messages', '[]')) AS x(
		tenant text, recipient text, task_id text, pool text, type text, key text, payload text, deadline bigint,
		lease text, lease_expires_at bigint, result text, error text, at bigint, notify text, shift integer)
	LOOP
		m.at := stamped(m.at, m.shift, 1, d);
		m.lease_expires_at := stamped(m.lease_expires_at, m.shift, 2, d);
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
			(txn->>'slot')::boolean, (txn->>'first')::boolean, (txn->>'room')::boolean, stamp + d);
	END IF;

	-- The last condition (core.Txn.Restamp): no start (a started_at that
	-- the stamp governs, shift bit 2) moved to or past its task's deadline.
	-- The exception rolls this transition back: nothing of it is written.
	IF d > 0 THEN
		SELECT x.id INTO late FROM jsonb_to_recordset(coalesce(txn->'tasks', '[]')) AS x(
			id text, started_at bigint, deadline bigint, shift integer)
		WHERE coalesce(x.shift, 0) & 2 <> 0 AND x.started_at IS NOT NULL AND x.deadline IS NOT NULL
			AND x.started_at + d >= x.deadline
		LIMIT 1;
		IF late IS NOT NULL THEN
			RAISE EXCEPTION 'start of task % would commit at or after its deadline', late USING ERRCODE = 'PLT02',
				DETAIL = d::text;
		END IF;
	END IF;
	RETURN d;
END $$;
