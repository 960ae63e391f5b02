// Parkinglot in the browser: the scheduler (Go core over the memory store,
// compiled to WebAssembly) runs in a dedicated Worker, or in a SharedWorker
// so that one capacity holds across every tab of the origin. This module is
// the page's side: a promise API over messages to that worker, with HTTP
// API v1's semantics and error codes.
//
//   const lot = await Parkinglot.start({pools: [{name: 'uploads', capacity: 3}], shared: true});
//   const permit = await lot.acquire('uploads');
//   try { await upload(file); } finally { await permit.release({ok: true}); }

const WORKER_URL = new URL('./worker.js', import.meta.url);

// ParkinglotError is a refusal, with HTTP API v1's error code
// (invalid_request, pool_not_found, pool_full, lease_lost, ...) and the
// field it names; a permit that never started has code expired or
// cancelled. task is set when the refusal concerns a task (a rejected one).
export class ParkinglotError extends Error {
  constructor({ code, message, field }, task) {
    super(message);
    this.name = 'ParkinglotError';
    this.code = code;
    if (field) this.field = field;
    if (task) this.task = task;
  }
}

// duration turns a duration option into HTTP API v1's form: a number is
// milliseconds; a string is a Go duration ("30s", "5m").
function duration(field, v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ParkinglotError({ code: 'invalid_request', field, message: `${field} must be a finite number of milliseconds, got ${v}` });
    return `${v}ms`;
  }
  if (typeof v === 'string') return v;
  throw new ParkinglotError({ code: 'invalid_request', field, message: `${field} must be milliseconds (a number) or a duration such as "30s", got ${typeof v}` });
}

// time turns a time option (a Date, milliseconds since the epoch, or an
// RFC 3339 string) into an RFC 3339 string.
function time(field, v) {
  if (v === undefined || v === null) return undefined;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'number') return new Date(v).toISOString();
  if (typeof v === 'string') return v;
  throw new ParkinglotError({ code: 'invalid_request', field, message: `${field} must be a Date, milliseconds since 1970 or an RFC 3339 string, got ${typeof v}` });
}

function json(field, v) {
  if (v === undefined) return undefined;
  try {
    return JSON.parse(JSON.stringify(v));
  } catch (err) {
    throw new ParkinglotError({ code: 'invalid_request', field, message: `${field} must be serializable as JSON: ${err.message}` });
  }
}

// connect starts the worker and returns its message port.
async function connect(shared, workerURL) {
  if (typeof Worker === 'undefined') {
    // Node (the tests): a worker thread runs the same worker script.
    const { Worker: NodeWorker } = await import('node:worker_threads');
    const w = new NodeWorker(workerURL);
    const port = {
      postMessage: (m) => w.postMessage(m),
      set onmessage(f) { w.on('message', (data) => f({ data })); },
      close: () => w.terminate(),
    };
    w.on('error', (err) => port.onerror?.(err));
    return port;
  }
  if (shared) {
    if (typeof SharedWorker === 'undefined') throw new Error('parkinglot: shared: true needs SharedWorker, which this browser lacks');
    const sw = new SharedWorker(workerURL, { type: 'module', name: 'parkinglot' });
    sw.port.start();
    return sw.port;
  }
  const w = new Worker(workerURL, { type: 'module' });
  return { postMessage: (m) => w.postMessage(m), set onmessage(f) { w.onmessage = f; }, close: () => w.terminate() };
}

export class Parkinglot {
  #port;
  #next = 1;
  #calls = new Map();
  #closed = false;
  #onHide = null;

  constructor(port) {
    this.#port = port;
    port.onmessage = (ev) => {
      const { id, ok, error, task } = ev.data;
      const c = this.#calls.get(id);
      if (!c) return;
      this.#calls.delete(id);
      if (error) c.reject(new ParkinglotError(error, task));
      else c.resolve(ok);
    };
  }

  // persistent tells whether the worker keeps the mailbox and the audit
  // trail in IndexedDB: false without IndexedDB (Node), with persist:
  // false, or when another worker of the origin is the writer (dedicated
  // workers in two tabs: the second runs in memory alone).
  persistent = false;

  // start loads the scheduler in a worker (shared: a SharedWorker, one per
  // origin) and creates or reconfigures the pools given. retention
  // ({mailbox, audit}, default 7 and 30 days) bounds what a new worker
  // restores from IndexedDB. Pool fields are
  // those of the native server's config: name, capacity, maxParked,
  // defaultMaxWait and runTimeout (milliseconds or "30s").
  static async start({ pools, shared = false, persist = true, retention = {}, sweepInterval, workerURL = WORKER_URL } = {}) {
    const specs = poolSpecs(pools);
    const keep = { mailbox: duration('retention.mailbox', retention.mailbox), audit: duration('retention.audit', retention.audit) };
    const lot = new Parkinglot(await connect(shared, workerURL));
    lot.#watchSelf();
    const { persistent } = await lot.#call('start', { pools: specs, persist, retention: keep, sweepInterval });
    lot.persistent = persistent;
    return lot;
  }

  // putPools creates pools or reconfigures them (a lowered capacity admits
  // nothing new until running is below it), all or none.
  async putPools(pools) { return (await this.#call('pools.put', { pools: poolSpecs(pools) })).pools; }

  // watchSelf lets the worker learn when this page goes away, so that its
  // permits free at once: a Web Lock held for the page's life (granted to
  // the worker when the page is gone, however it went), and pagehide.
  #watchSelf() {
    if (globalThis.navigator?.locks && typeof document !== 'undefined') {
      const lock = `parkinglot-page-${crypto.randomUUID()}`;
      navigator.locks.request(lock, () => {
        this.#port.postMessage({ op: 'hello', args: { lock } });
        return new Promise(() => {}); // held until the page ends
      });
    }
    if (typeof addEventListener === 'function' && typeof document !== 'undefined') {
      this.#onHide = (ev) => { if (!ev.persisted) this.close(); };
      addEventListener('pagehide', this.#onHide);
    }
  }

  #call(op, args) {
    if (this.#closed) return Promise.reject(new Error('parkinglot: closed'));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { resolve, reject });
      this.#port.postMessage({ id, op, args });
    });
  }

  // submit submits a task: resolves with the task (running, with its lease,
  // or parked); a full parked depth rejects with code pool_full and the
  // rejected task. opts: maxWait or deadline, key, recipient, runTimeout.
  async submit(pool, payload, opts = {}) {
    const { task } = await this.#call('submit', submitArgs(pool, payload, opts));
    return task;
  }

  // acquire is the permit-mode semaphore: it resolves with a Permit when the
  // task starts (at once, or when a slot frees for it while parked), and
  // rejects with code pool_full (rejected), expired (its deadline came
  // first) or cancelled. While the permit is held, the page heartbeats its
  // lease; a page that goes away loses its permits.
  async acquire(pool, opts = {}) {
    const { payload, heartbeat = true, ...rest } = opts;
    const task = await this.#call('acquire', submitArgs(pool, payload, rest));
    return new Permit(this, task, heartbeat);
  }

  complete(id, { lease, status = 'succeeded', result, error } = {}) {
    return this.#call('complete', { id, lease, status, result: json('result', result), error });
  }

  async heartbeat(id, { lease, extend } = {}) {
    const { leaseExpiresAt } = await this.#call('heartbeat', { id, lease, extend: duration('extend', extend) });
    return leaseExpiresAt;
  }

  cancel(id) { return this.#call('cancel', { id }); }

  task(id) { return this.#call('task', { id }); }

  // mailbox iterates over a recipient's messages in cursor order, waiting
  // for new ones: `for await (const m of lot.mailbox('me')) {...}`; break
  // to stop. opts: after (a cursor), ack (acknowledge each page once
  // read), limit.
  async *mailbox(recipient, { after = '', ack = false, limit } = {}) {
    let cursor = after;
    for (;;) {
      const page = await this.#call('mailbox', { recipient, after: cursor, limit, wait: 20000 });
      for (const m of page.messages) yield m;
      if (page.messages.length > 0) {
        cursor = page.next;
        if (ack) await this.ack(recipient, cursor);
      }
    }
  }

  // mailboxPage reads one page (wait: milliseconds to wait for a message).
  mailboxPage(recipient, { after, limit, wait = 0 } = {}) {
    return this.#call('mailbox', { recipient, after, limit, wait });
  }

  ack(recipient, upTo) { return this.#call('ack', { recipient, upTo }); }

  // audit returns a page of the audit trail: {events, next}. query: from,
  // to (Date, milliseconds or RFC 3339), pool, task, after, limit.
  audit({ from, to, pool, task, after, limit } = {}) {
    return this.#call('audit', { from: time('from', from), to: time('to', to), pool, task, after, limit });
  }

  async pools() { return (await this.#call('pools')).pools; }

  // flush resolves when the mailbox messages and audit events of every call
  // answered so far are in IndexedDB (they are written right after each
  // call, in order; what a page that dies first had not flushed may be
  // lost).
  flush() { return this.#call('flush'); }

  // bench runs a benchmark inside the worker (docs/benchmarks.md).
  bench(mode, n) { return this.#call('bench', { mode, n }); }

  // close ends this page's connection: its permits are cancelled; with a
  // dedicated worker, the worker ends.
  close() {
    if (this.#closed) return;
    this.#port.postMessage({ op: 'bye' });
    this.#closed = true;
    if (this.#onHide) removeEventListener('pagehide', this.#onHide);
    for (const c of this.#calls.values()) c.reject(new Error('parkinglot: closed'));
    this.#calls.clear();
    this.#port.close?.();
  }
}

// poolSpecs checks pools and fills the defaults of the native server's
// sample config: maxParked 1000, defaultMaxWait 10m, runTimeout 5m.
function poolSpecs(pools) {
  if (!Array.isArray(pools)) throw new ParkinglotError({ code: 'invalid_request', field: 'pools', message: 'pools must be an array of {name, capacity, maxParked, defaultMaxWait, runTimeout}' });
  return pools.map((p, i) => ({
    name: p?.name, capacity: p?.capacity, maxParked: p?.maxParked ?? 1000,
    defaultMaxWait: duration(`pools[${i}].defaultMaxWait`, p?.defaultMaxWait ?? '10m'),
    runTimeout: duration(`pools[${i}].runTimeout`, p?.runTimeout ?? '5m'),
  }));
}

function submitArgs(pool, payload, { maxWait, deadline, key, recipient, runTimeout, ...unknown } = {}) {
  const extra = Object.keys(unknown);
  if (extra.length > 0) throw new ParkinglotError({ code: 'invalid_request', field: extra[0], message: `unknown option ${JSON.stringify(extra[0])}` });
  return {
    pool, payload: json('payload', payload), key, recipient,
    maxWait: duration('maxWait', maxWait), deadline: time('deadline', deadline), runTimeout: duration('runTimeout', runTimeout),
  };
}

// Permit is a started task held by this page: release it with its result
// (or fail it with an error) to free its slot.
export class Permit {
  #lot;
  #timer = null;

  constructor(lot, task, heartbeat) {
    this.#lot = lot;
    this.task = task;
    this.id = task.id;
    this.lease = task.lease;
    if (heartbeat && task.leaseExpiresAt && task.startedAt) {
      // A third of the lease, so that two beats may be late before it ends.
      const every = Math.max(1000, (Date.parse(task.leaseExpiresAt) - Date.parse(task.startedAt)) / 3);
      this.#timer = setInterval(() => {
        lot.heartbeat(this.id, { lease: this.lease }).catch(() => this.#stop());
      }, every);
      this.#timer.unref?.(); // Node: a held permit does not keep the process alive
    }
  }

  #stop() { clearInterval(this.#timer); this.#timer = null; }

  // release completes the task as succeeded with result.
  release(result) {
    this.#stop();
    return this.#lot.complete(this.id, { lease: this.lease, status: 'succeeded', result });
  }

  // fail completes the task as failed with error (a string).
  fail(error) {
    this.#stop();
    return this.#lot.complete(this.id, { lease: this.lease, status: 'failed', error: String(error) });
  }

  heartbeat(extend) { return this.#lot.heartbeat(this.id, { lease: this.lease, extend }); }
}
