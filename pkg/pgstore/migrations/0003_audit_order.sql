-- The audit trail in commit order (core.Txn.StampAfter). A transition is
-- stamped when core decides it, before its commit, so two transitions of
-- one pool could commit in the other order than their stamps. A pool now
-- keeps the stamp of its last committed transition (last_at, NULL before
-- the first), and a transition that touches the pool commits at
-- greatest(its stamp, last_at), decided under the pool's row lock: its
-- events, and the times its stamp governs (core.Txn.StampedTimes, which
-- the store marks in each record's shift bits), move by the difference,
-- which commit_one returns and commit_many reports as "shift". Events of
-- one pool are numbered (seq) under the same lock, so in commit order.

ALTER TABLE pools ADD COLUMN last_at bigint;

-- stamped is v moved by d when flag is set in mask.
CREATE FUNCTION stamped(v bigint, mask integer, flag integer, d bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN v IS NOT NULL AND coalesce(mask, 0) & flag <> 0 THEN v + d ELSE v END
$$;

DROP FUNCTION commit_pool(text, integer, integer, boolean, boolean, boolean);

-- commit_pool is 0001's, and records the transition's stamp, if it has one,
-- as the pool's last.
CREATE FUNCTION commit_pool(p_name text, p_run integer, p_park integer, p_slot boolean, p_first boolean, p_room boolean,
	p_at bigint)
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
	UPDATE pools SET running = running + p_run, parked = parked + p_park, last_at = coalesce(p_at, last_at)
	WHERE name = p_name;
END $$;

-- commit_one is 0002's, at the stamp the pool's order allows; it returns
-- how far it moved the stamp (0: not at all).
DROP FUNCTION commit_one(jsonb, text);

CREATE FUNCTION commit_one(txn jsonb, channel text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	t   record;
	m   record;
	v   bigint;
	cur bigint;
	stamp bigint := (txn->>'at')::bigint;
	d     bigint := 0;
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
	RETURN d;
END $$;

-- commit_many is 0001's, reporting each transition's shift.
CREATE OR REPLACE FUNCTION commit_many(p jsonb, channel text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	txn jsonb;
	out jsonb := '[]';
	d   bigint;
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
			d := commit_one(txn, channel);
			out := out || jsonb_build_array(CASE WHEN d > 0 THEN jsonb_build_object('shift', d) ELSE '{}'::jsonb END);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS c = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
			out := out || jsonb_build_array(jsonb_build_object('code', c, 'message', msg, 'detail', det));
		END;
	END LOOP;
	RETURN out;
END $$;
