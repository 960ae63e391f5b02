// The JavaScript API against the real parkinglot.wasm in a Node worker
// thread: HTTP API v1's contract behaviours that make sense in one process.
// `make test-web` builds dist/web first; PARKINGLOT_WEB_DIR points
// elsewhere. Waits are bounded by counts of messages, each test by a
// generous hang guard: no verdict depends on the machine's speed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = resolve(process.env.PARKINGLOT_WEB_DIR ?? new URL('../../dist/web', import.meta.url).pathname);
if (!existsSync(`${dir}/parkinglot.wasm`)) {
  throw new Error(`${dir}/parkinglot.wasm is missing: run \`make wasm\` (or set PARKINGLOT_WEB_DIR)`);
}
const { Parkinglot, ParkinglotError } = await import(pathToFileURL(`${dir}/parkinglot.js`).href);

const HANG_GUARD = { timeout: 30000 };
let lot;
let seq = 0;
// fresh names a pool and a recipient of one test.
const fresh = (what) => `${what}-${++seq}`;

before(async () => {
  lot = await Parkinglot.start({
    pools: [{ name: 'base', capacity: 1 }],
    sweepInterval: 20, // the deadline and lease tests wait on the sweeper
  });
});
after(() => lot.close());

test('without IndexedDB (Node) the worker keeps nothing', () => {
  assert.equal(lot.persistent, false);
});

// pool creates a pool of its own for one test.
async function pool(opts = {}) {
  const name = fresh('pool');
  await lot.putPools([{ name, capacity: 1, ...opts }]);
  return name;
}

// rejects asserts that promise rejects with a ParkinglotError of code (and
// field, when given).
async function rejects(promise, code, field) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ParkinglotError, `not a ParkinglotError: ${err}`);
    assert.equal(err.code, code, err.message);
    if (field !== undefined) assert.equal(err.field, field, err.message);
    return true;
  });
}

// messages reads recipient's mailbox until n messages have come.
async function messages(recipient, n) {
  const out = [];
  for await (const m of lot.mailbox(recipient)) {
    out.push(m);
    if (out.length === n) break;
  }
  return out;
}

describe('capacity and parking', HANG_GUARD, () => {
  test('never more running than capacity; parked tasks start in order as slots free', async () => {
    const p = await pool({ capacity: 3 });
    const me = fresh('r');
    const tasks = [];
    for (let i = 0; i < 10; i++) tasks.push(await lot.submit(p, { i }, { recipient: me }));
    assert.deepEqual(tasks.map((t) => t.state), [...Array(3).fill('running'), ...Array(7).fill('parked')]);
    assert.ok(tasks.slice(0, 3).every((t) => t.lease), 'a running task carries its lease');
    assert.deepEqual((await lot.pools()).find((x) => x.name === p), { name: p, executor: 'permit', capacity: 3, running: 3, parked: 7, maxParked: 1000 });

    // Work each started task off the mailbox, counting what runs.
    let running = 0;
    let peak = 0;
    const order = [];
    for await (const m of lot.mailbox(me)) {
      if (m.type === 'started') {
        running++;
        peak = Math.max(peak, running);
        order.push(m.taskId);
        await lot.complete(m.taskId, { lease: m.lease, result: { ok: true } });
      } else {
        assert.equal(m.type, 'succeeded');
        running--;
      }
      if (order.length === 10 && running === 0) break;
    }
    assert.ok(peak <= 3, `peak running ${peak} > capacity 3`);
    assert.deepEqual(order, tasks.map((t) => t.id), 'parked tasks start first in, first out');
    assert.deepEqual((await lot.pools()).find((x) => x.name === p), { name: p, executor: 'permit', capacity: 3, running: 0, parked: 0, maxParked: 1000 });
  });

  test('a full parked depth rejects with pool_full and the rejected task, whose outcome is in the mailbox', async () => {
    const p = await pool({ capacity: 1, maxParked: 2 });
    const me = fresh('r');
    for (let i = 0; i < 3; i++) await lot.submit(p, null, { recipient: me });
    let rejected;
    await rejects(lot.submit(p, { late: true }, { recipient: me }).catch((e) => { rejected = e.task; throw e; }), 'pool_full');
    assert.equal(rejected.state, 'rejected');
    const [, second] = await messages(me, 2);
    assert.deepEqual([second.type, second.taskId], ['rejected', rejected.id]);
  });

  test('lowering capacity admits nothing new until running is below it', async () => {
    const p = await pool({ capacity: 2 });
    const a = await lot.submit(p);
    await lot.submit(p);
    await lot.putPools([{ name: p, capacity: 1 }]);
    const c = await lot.submit(p);
    assert.equal(c.state, 'parked');
    await lot.complete(a.id, { lease: a.lease });
    assert.equal((await lot.task(c.id)).state, 'parked', 'running 1 = capacity 1: still no slot');
  });
});

describe('deadlines and leases', HANG_GUARD, () => {
  test('a parked task whose deadline passes expires and never starts', async () => {
    const p = await pool({ capacity: 1 });
    const me = fresh('r');
    const holder = await lot.submit(p, null, { recipient: me });
    const late = await lot.submit(p, null, { recipient: me, maxWait: 30 });
    const [, outcome] = await messages(me, 2); // started (holder), then the expiry
    assert.deepEqual([outcome.type, outcome.taskId], ['expired', late.id]);
    const t = await lot.task(late.id);
    assert.equal(t.state, 'expired');
    assert.equal(t.startedAt, undefined);
    await lot.complete(holder.id, { lease: holder.lease });
    assert.equal((await lot.pools()).find((x) => x.name === p).running, 0, 'the expired task took no slot');
  });

  test('a lease that ends without heartbeat is reclaimed: timed_out, lease_lost, and the slot goes to the next', async () => {
    const p = await pool({ capacity: 1, runTimeout: 50 });
    const me = fresh('r');
    const lost = await lot.submit(p, null, { recipient: me });
    const next = await lot.submit(p, null, { recipient: me, runTimeout: '1h' });
    const ms = await messages(me, 3); // started, timed_out, started (the next)
    assert.deepEqual(ms.map((m) => [m.type, m.taskId]), [['started', lost.id], ['timed_out', lost.id], ['started', next.id]]);
    await rejects(lot.complete(lost.id, { lease: lost.lease }), 'lease_lost', 'lease');
    await rejects(lot.heartbeat(lost.id, { lease: lost.lease }), 'lease_lost', 'lease');
  });

  test('a heartbeat extends the lease', async () => {
    const p = await pool({ capacity: 1, runTimeout: '1m' });
    const t = await lot.submit(p);
    const until = await lot.heartbeat(t.id, { lease: t.lease, extend: '1h' });
    assert.ok(Date.parse(until) > Date.parse(t.leaseExpiresAt) + 50 * 60 * 1000, `${until} is not an hour on`);
  });
});

describe('idempotency', HANG_GUARD, () => {
  test('the same key and body replays the task; another body is key_conflict', async () => {
    const p = await pool({ capacity: 1 });
    const key = fresh('k');
    const a = await lot.submit(p, { n: 1, s: 'x' }, { key, maxWait: '1m' });
    const b = await lot.submit(p, { s: 'x', n: 1 }, { key, maxWait: 60000 }); // member order and units do not matter
    assert.equal(b.id, a.id);
    await rejects(lot.submit(p, { n: 2 }, { key, maxWait: '1m' }), 'key_conflict', 'key');
    assert.equal((await lot.pools()).find((x) => x.name === p).running, 1, 'a replay takes no second slot');
  });

  test('a repeated completion returns the task again; cancel of a cancelled task too', async () => {
    const p = await pool({ capacity: 1 });
    const t = await lot.submit(p);
    const done = await lot.complete(t.id, { lease: t.lease, result: { v: 1 } });
    assert.deepEqual(await lot.complete(t.id, { lease: t.lease, result: { v: 1 } }), done);
    const running = await lot.submit(p);
    const parked = await lot.submit(p);
    assert.deepEqual([running.state, parked.state], ['running', 'parked']);
    assert.equal((await lot.cancel(parked.id)).state, 'cancelled');
    assert.equal((await lot.cancel(parked.id)).state, 'cancelled');
    assert.equal((await lot.cancel(running.id)).state, 'cancelled');
    assert.equal((await lot.pools()).find((x) => x.name === p).running, 0, 'a cancelled running task frees its slot');
    await rejects(lot.cancel(t.id), 'invalid_state');
  });
});

describe('mailbox', HANG_GUARD, () => {
  test('messages come in cursor order, a start before its outcome, and acked ones are not returned again', async () => {
    const p = await pool({ capacity: 2 });
    const me = fresh('r');
    const ids = [];
    for (let i = 0; i < 6; i++) {
      const t = await lot.submit(p, null, { recipient: me });
      ids.push(t.id);
      if (t.state === 'running') await lot.complete(t.id, { lease: t.lease, status: i % 2 ? 'failed' : 'succeeded', error: i % 2 ? 'boom' : undefined });
    }
    const ms = await messages(me, 12);
    const cursors = ms.map((m) => m.cursor);
    assert.deepEqual([...cursors].sort(), cursors, 'cursor order');
    assert.equal(new Set(cursors).size, 12);
    for (const id of ids) {
      const mine = ms.filter((m) => m.taskId === id).map((m) => m.type);
      assert.equal(mine.length, 2, `task ${id}: ${mine}`);
      assert.equal(mine[0], 'started');
      assert.ok(['succeeded', 'failed'].includes(mine[1]));
    }
    assert.equal(ms.filter((m) => m.type === 'failed').length, 3);
    assert.equal(ms.find((m) => m.type === 'failed').error, 'boom');

    await lot.ack(me, cursors[5]);
    const page = await lot.mailboxPage(me);
    assert.deepEqual(page.messages.map((m) => m.cursor), cursors.slice(6));
    await rejects(lot.ack(me, 'AAAAAAAAAP8'), 'invalid_request', 'upTo'); // beyond the newest
  });

  test('the iterator acknowledges what it read when asked to', async () => {
    const p = await pool({ capacity: 2 });
    const me = fresh('r');
    await lot.submit(p, null, { recipient: me });
    await lot.submit(p, null, { recipient: me });
    const it = lot.mailbox(me, { ack: true });
    assert.equal((await it.next()).value.type, 'started');
    assert.equal((await it.next()).value.type, 'started');
    // The page is acknowledged when the iterator asks for the next one.
    const third = it.next(); // acknowledges, then waits for more
    third.catch(() => {}); // still waiting when the worker closes
    await lot.submit(p, null, { recipient: me, maxWait: '1m' }); // parked: no message
    assert.deepEqual((await lot.mailboxPage(me)).messages, []);
  });

  test('a waiting read is answered when a message lands, and a page honours limit', async () => {
    const p = await pool({ capacity: 1 });
    const me = fresh('r');
    const waiting = lot.mailboxPage(me, { wait: 20000 });
    const t = await lot.submit(p, null, { recipient: me });
    const page = await waiting;
    assert.deepEqual(page.messages.map((m) => [m.type, m.taskId, m.lease]), [['started', t.id, t.lease]]);
    await lot.complete(t.id, { lease: t.lease });
    assert.equal((await lot.mailboxPage(me, { limit: 1 })).messages.length, 1);
    assert.equal((await lot.mailboxPage(me, { wait: 0, after: page.next })).messages[0].type, 'succeeded');
  });
});

describe('permits', HANG_GUARD, () => {
  test('acquire resolves when the task starts, at once or when a slot frees', async () => {
    const p = await pool({ capacity: 1 });
    const first = await lot.acquire(p, { heartbeat: false });
    assert.equal(first.task.state, 'running');
    let started = false;
    const second = lot.acquire(p, { payload: { n: 2 }, heartbeat: false }).then((x) => { started = true; return x; });
    assert.equal((await lot.pools()).find((x) => x.name === p).parked, 1);
    assert.equal(started, false);
    await first.release({ ok: 1 });
    const permit = await second;
    assert.equal(permit.task.state, 'running');
    assert.deepEqual(permit.task.payload, { n: 2 });
    const done = await permit.release({ ok: 2 });
    assert.deepEqual([done.state, done.result], ['succeeded', { ok: 2 }]);
  });

  test('a burst of acquires at once: each starts once, never more held than capacity, each with one outcome', async () => {
    const p = await pool({ capacity: 3, maxParked: 500 });
    const me = fresh('r');
    let held = 0;
    let peak = 0;
    const ids = await Promise.all(Array.from({ length: 300 }, async (_, i) => {
      const permit = await lot.acquire(p, { recipient: me, payload: { i }, heartbeat: false });
      held++;
      peak = Math.max(peak, held);
      await new Promise((r) => setImmediate(r)); // let others in while it is held
      held--;
      await permit.release({ i });
      return permit.id;
    }));
    assert.equal(new Set(ids).size, 300);
    assert.ok(peak <= 3, `peak held ${peak} > capacity 3`);
    assert.ok(peak > 1, 'the burst never held two permits at once: it tested nothing');
    const ms = await messages(me, 600);
    const outcomes = ms.filter((m) => m.type === 'succeeded').map((m) => m.taskId);
    assert.deepEqual([...outcomes].sort(), [...ids].sort());
  });

  test('acquire rejects with pool_full when the depth is full, cancelled when cancelled, expired when the deadline comes first', async () => {
    const p = await pool({ capacity: 1, maxParked: 1 });
    const held = await lot.acquire(p, { heartbeat: false });
    const blocker = lot.acquire(p).then(() => assert.fail('the cancelled acquire started'), (e) => e); // parked for ten minutes, the pool's default
    await rejects(lot.acquire(p), 'pool_full');
    const { events } = await lot.audit({ pool: p });
    const parked = events.filter((e) => e.to === 'parked').map((e) => e.taskId);
    assert.equal(parked.length, 1);
    await lot.cancel(parked[0]);
    const err = await blocker;
    assert.ok(err instanceof ParkinglotError, String(err));
    assert.deepEqual([err.code, err.task.id, err.task.state], ['cancelled', parked[0], 'cancelled']);
    await rejects(lot.acquire(p, { maxWait: 30 }), 'expired');
    await held.fail('gave up');
    assert.deepEqual([(await lot.task(held.id)).state, (await lot.task(held.id)).error], ['failed', 'gave up']);
  });
});

describe('audit', HANG_GUARD, () => {
  test('every transition is an event, queryable by task and pool, in pages', async () => {
    const p = await pool({ capacity: 1 });
    const a = await lot.submit(p);
    const b = await lot.submit(p);
    await lot.complete(a.id, { lease: a.lease });
    const bRun = await lot.task(b.id);
    await lot.cancel(bRun.id);
    const { events } = await lot.audit({ task: b.id });
    assert.deepEqual(events.map((e) => [e.type, e.from, e.to]), [['submit', '', 'parked'], ['start', 'parked', 'running'], ['cancel', 'running', 'cancelled']]);
    const all = [];
    let next = '';
    do {
      const page = await lot.audit({ pool: p, limit: 2, after: next });
      all.push(...page.events);
      next = page.next;
    } while (next);
    assert.equal(all.length, 5);
    assert.ok(all.every((e) => e.pool === p && e.tenant === 'default'));
    assert.deepEqual((await lot.audit({ pool: p, from: new Date(Date.now() + 3600e3), to: Date.now() + 7200e3 })).events, []);
  });
});

describe('bad input', HANG_GUARD, () => {
  test('each refusal names what is wrong, with HTTP API v1 codes', async () => {
    const p = await pool();
    await rejects(lot.submit('nope'), 'pool_not_found');
    await rejects(lot.submit(p, null, { maxWait: 'soon' }), 'invalid_request', 'maxWait');
    await rejects(lot.submit(p, null, { maxWait: '1m', deadline: new Date(Date.now() + 1000) }), 'invalid_request', 'maxWait');
    await rejects(lot.submit(p, null, { deadline: 'tomorrow' }), 'invalid_request', 'deadline');
    await rejects(lot.submit(p, null, { colour: 'red' }), 'invalid_request', 'colour');
    await rejects(lot.submit(p, 'x'.repeat(300 << 10)), 'payload_too_large', 'payload');
    await rejects(lot.task('0123456789abcdef01234567'), 'not_found');
    await rejects(lot.complete('0123', { lease: 'l', status: 'done' }), 'invalid_request', 'status');
    await rejects(lot.audit({ limit: 5000 }), 'invalid_request', 'limit');
    await rejects(lot.putPools([{ name: 'ok', capacity: 1 }, { name: 'bad', capacity: 0 }]), 'invalid_request', 'pools[1].capacity');
    await rejects(lot.putPools([{ name: 'b c', capacity: 1 }]), 'invalid_request', 'pools[0].name');
    assert.equal((await lot.pools()).some((x) => x.name === 'ok'), false, 'a refused putPools writes nothing');
  });
});
