// The worker side of Parkinglot's web runtime: it loads the scheduler
// (parkinglot.wasm, core over the memory store), serves the tabs connected
// to it, runs the sweeper on a timer, waits for parked permits and mailbox
// messages on the scheduler's notes, and keeps the mailbox and the audit
// trail in IndexedDB. One Host serves one dedicated Worker's page or every
// tab of a SharedWorker, so that capacity is one across them.

const DEFAULT_SWEEP_MS = 250; // the native server's sweepInterval
const MAX_WAIT_MS = 20000; // HTTP API v1's longest mailbox long poll
const MAX_BATCH = 1000; // requests per crossing into the wasm (it takes up to 10,000)

// loadScheduler instantiates the wasm and returns its bridge function.
async function loadScheduler(wasmURL, execURL) {
  if (!globalThis.Go) await import(execURL);
  const go = new globalThis.Go();
  const ready = new Promise((resolve) => { globalThis.parkinglotReady = resolve; });
  let instance;
  if (wasmURL.protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    ({ instance } = await WebAssembly.instantiate(await readFile(wasmURL), go.importObject));
  } else {
    const resp = await fetch(wasmURL);
    if (!resp.ok) throw new Error(`parkinglot: loading ${wasmURL}: HTTP ${resp.status}`);
    ({ instance } = await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject));
  }
  go.run(instance); // resolves only if the program exits, which it does not
  await ready;
  return globalThis.parkinglotCall;
}

// Persistence: one IndexedDB database per origin (and name). What is kept
// and what is not: see restore.go in cmd/parkinglot-wasm.
const STORES = { messages: ['Recipient', 'Cursor'], events: 'Seq', acks: 'Recipient' };

function idbRequest(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function openDB(name) {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => {
    for (const [store, keyPath] of Object.entries(STORES)) open.result.createObjectStore(store, { keyPath });
  };
  return idbRequest(open);
}

// LOCK_WAIT_MS is how long a worker waits for the database's writer lock:
// on a reload the worker of the page before may take a moment to end.
const LOCK_WAIT_MS = 3000;

// writerLock makes this worker the one writer of the database name, for
// its life: two writers (dedicated workers of two tabs) would number their
// messages alike and overwrite each other's. It reports false when another
// worker keeps the lock for longer than LOCK_WAIT_MS; this one then runs
// without persistence.
function writerLock(name) {
  if (!globalThis.navigator?.locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    let late = false;
    const timer = setTimeout(() => { late = true; resolve(false); }, LOCK_WAIT_MS);
    navigator.locks.request(`parkinglot-db-${name}`, () => {
      if (late) return undefined; // too late to restore: let it go
      clearTimeout(timer);
      resolve(true);
      return new Promise(() => {}); // held until the worker ends
    });
  });
}

// The scheduler's operations that a page may call, as the bridge names
// them; acquire is a watched submit.
const SCHEDULER_OPS = new Set(['pools.put', 'pools', 'pool', 'submit', 'task', 'heartbeat', 'complete', 'cancel', 'mailbox', 'ack', 'audit']);

// prepare returns the bridge call of a page's request, or null for the
// worker's own requests and for a mailbox wait out of range, which handle
// answers.
function prepare({ msg: { op, args = {} } }) {
  if (op === 'acquire') return { op: 'submit', args: { ...args, watch: true } };
  if (!SCHEDULER_OPS.has(op)) return null;
  if (op === 'mailbox') {
    const { wait = 0, ...rest } = args;
    if (typeof wait !== 'number' || !(wait >= 0 && wait <= MAX_WAIT_MS)) return null;
    return { op, args: rest };
  }
  return { op, args };
}

// nextTask runs f in a task of its own after those already queued, so that
// the requests that arrived together are all queued when it runs (a
// microtask would run before the next one is taken).
const nextTask = (() => {
  if (typeof MessageChannel === 'undefined') return (f) => setTimeout(f, 0);
  const ch = new MessageChannel();
  let pending = null;
  ch.port1.onmessage = () => { const f = pending; pending = null; f(); };
  return (f) => { pending = f; ch.port2.postMessage(0); };
})();

export class Host {
  #call = null; // the bridge, once loaded
  #ready = false; // loaded and restored: open to requests
  #starting = null;
  #conns = new Set();
  #queue = []; // requests waiting for the next drain: {conn, msg}
  #draining = false;
  #pending = new Map(); // task id -> {conn, id}: permits waiting to start
  #waiters = new Map(); // recipient -> Set of mailbox long polls
  #db = null;
  #writes = Promise.resolve(); // IndexedDB writes, in commit order
  #sweeper = null;
  #urls;

  constructor({ wasmURL, execURL }) {
    this.#urls = { wasmURL, execURL };
  }

  // serve answers the requests of one connection: a dedicated worker's
  // page, or a tab's port of a SharedWorker.
  serve(port) {
    const conn = { port, permits: new Set(), closed: false };
    this.#conns.add(conn);
    port.onmessage = (ev) => this.#enqueue(conn, ev.data);
    port.start?.();
  }

  #reply(conn, id, ok, error, task) {
    if (conn.closed || id === undefined) return;
    conn.port.postMessage(error ? { id, error, task } : { id, ok });
  }

  // invoke runs one operation of the scheduler and acts on its notes.
  invoke(op, args = {}) {
    const out = JSON.parse(this.#call(op, JSON.stringify(args)));
    if (out.notes) this.#notes(out.notes);
    return out;
  }

  async #start(opts) {
    this.#call = await loadScheduler(this.#urls.wasmURL, this.#urls.execURL);
    const name = opts.dbName ?? 'parkinglot';
    if (opts.persist !== false && globalThis.indexedDB && await writerLock(name)) {
      this.#db = await openDB(name);
      await this.#restore(opts.retention ?? {});
    }
    const every = opts.sweepInterval ?? DEFAULT_SWEEP_MS;
    this.#sweeper = setInterval(() => this.invoke('sweep'), every);
    this.#ready = true;
  }

  async #restore(retention) {
    const tx = this.#db.transaction(Object.keys(STORES), 'readonly');
    const [messages, events, acks] = await Promise.all(Object.keys(STORES).map((s) => idbRequest(tx.objectStore(s).getAll())));
    const out = this.invoke('restore', { messages, events, acks, mailboxRetention: retention.mailbox, auditRetention: retention.audit });
    if (out.error) throw new Error(`parkinglot: restoring the mailbox and audit trail from IndexedDB: ${out.error.message}`);
    const { dropMessages, dropEvents } = out.ok;
    const del = this.#db.transaction(['messages', 'events'], 'readwrite');
    for (const [r, upTo] of Object.entries(dropMessages)) {
      del.objectStore('messages').delete(IDBKeyRange.bound([r, 0], [r, upTo]));
    }
    if (dropEvents > 0) del.objectStore('events').delete(IDBKeyRange.upperBound(dropEvents));
    this.invoke('persist');
  }

  // keep writes a journal to IndexedDB, one transaction per call, in order.
  #keep(j) {
    if (!this.#db) return;
    this.#writes = this.#writes.then(() => new Promise((resolve) => {
      const tx = this.#db.transaction(Object.keys(STORES), 'readwrite');
      for (const m of j.messages ?? []) tx.objectStore('messages').put(m);
      for (const e of j.events ?? []) tx.objectStore('events').put(e);
      for (const a of j.acks ?? []) tx.objectStore('acks').put(a);
      tx.oncomplete = () => resolve();
      tx.onabort = () => {
        // Out of quota, or the database was deleted: what this call wrote
        // is in memory only and will not survive a reload.
        console.warn(`parkinglot: keeping mailbox messages and audit events in IndexedDB failed: ${tx.error?.message ?? 'aborted'}`);
        resolve();
      };
    }));
  }

  #notes(n) {
    if (n.keep) this.#keep(n.keep);
    for (const t of n.started ?? []) {
      const p = this.#pending.get(t.id);
      if (!p) continue;
      this.#pending.delete(t.id);
      if (p.conn.closed) {
        // Its tab went away while it was parked: give the slot back.
        this.invoke('cancel', { id: t.id });
        continue;
      }
      p.conn.permits.add(t.id);
      this.#reply(p.conn, p.id, t);
    }
    for (const t of n.ended ?? []) {
      const p = this.#pending.get(t.id);
      if (!p) continue;
      this.#pending.delete(t.id);
      const code = t.state; // expired or cancelled
      this.#reply(p.conn, p.id, null, { code, message: `task ${t.id} ${t.state} before it could start` }, t);
    }
    for (const r of n.mail ?? []) {
      const ws = this.#waiters.get(r);
      if (!ws) continue;
      // Each retry may note more mail; retried once per note is enough.
      queueMicrotask(() => { for (const w of [...ws]) this.#poll(w); });
    }
  }

  // poll answers a waiting mailbox read if it has messages now.
  #poll(w) {
    const out = this.invoke('mailbox', w.args);
    if (out.error || out.ok.messages.length > 0) {
      this.#unwait(w);
      this.#reply(w.conn, w.id, out.ok, out.error);
    }
  }

  #unwait(w) {
    clearTimeout(w.timer);
    const ws = this.#waiters.get(w.args.recipient);
    ws?.delete(w);
    if (ws?.size === 0) this.#waiters.delete(w.args.recipient);
  }

  // enqueue takes a request; the requests that arrive together (a page's
  // burst) run as one batch, in one crossing into the wasm, which costs
  // tens of microseconds, as much as a submission itself.
  #enqueue(conn, msg) {
    this.#queue.push({ conn, msg: msg ?? {} });
    if (this.#draining) return;
    this.#draining = true;
    nextTask(() => this.#drain());
  }

  // drain runs the queued requests in order: the scheduler's in batches,
  // the worker's own (start, bye, hello, flush, bench) one by one between
  // them.
  async #drain() {
    try {
      while (this.#queue.length > 0) {
        const items = this.#queue.splice(0);
        let batch = [];
        for (const it of items) {
          const call = this.#ready ? prepare(it) : null;
          if (call) {
            batch.push({ ...it, call });
            if (batch.length === MAX_BATCH) {
              this.#runBatch(batch);
              batch = [];
            }
            continue;
          }
          this.#runBatch(batch);
          batch = [];
          try {
            await this.#handle(it.conn, it.msg);
          } catch (err) {
            this.#reply(it.conn, it.msg.id, null, { code: 'internal', message: `internal error: ${err?.message ?? err}` });
          }
        }
        this.#runBatch(batch);
      }
    } finally {
      this.#draining = false;
    }
  }

  // runBatch runs the prepared requests of items in one call, answers each,
  // and then acts on the notes: permits and long polls that the batch
  // registered see the starts and the mail that later calls of it caused.
  #runBatch(items) {
    if (items.length === 0) return;
    let out;
    try {
      out = JSON.parse(this.#call('batch', JSON.stringify({ calls: items.map((it) => it.call) })));
    } catch (err) {
      out = { error: { code: 'internal', message: `internal error: ${err?.message ?? err}` } };
    }
    items.forEach((it, i) => this.#finish(it, out.error ? { error: out.error } : out.ok.replies[i]));
    if (out.notes) this.#notes(out.notes);
  }

  // finish answers one request of a batch from its reply.
  #finish({ conn, msg: { id, op, args = {} } }, r) {
    switch (op) {
      case 'acquire': {
        if (r.error) return this.#reply(conn, id, null, r.error, r.task);
        const t = r.ok.task;
        if (t.state === 'running') {
          conn.permits.add(t.id);
          return this.#reply(conn, id, t);
        }
        if (t.state === 'parked') return this.#pending.set(t.id, { conn, id });
        return this.#reply(conn, id, null, { code: t.state, message: `task ${t.id} ${t.state} before it could start` }, t);
      }
      case 'mailbox': {
        const { wait = 0, ...rest } = args;
        if (r.error || r.ok.messages.length > 0 || wait === 0) return this.#reply(conn, id, r.ok, r.error);
        const w = { conn, id, args: rest };
        w.timer = setTimeout(() => { this.#unwait(w); this.#reply(conn, id, r.ok); }, wait);
        if (!this.#waiters.has(rest.recipient)) this.#waiters.set(rest.recipient, new Set());
        this.#waiters.get(rest.recipient).add(w);
        return;
      }
      case 'complete':
      case 'cancel':
        if (!r.error) conn.permits.delete(args.id);
        return this.#reply(conn, id, r.ok, r.error);
      default:
        return this.#reply(conn, id, r.ok, r.error, r.task);
    }
  }

  // handle serves the worker's own requests, and the scheduler's before
  // start or when their arguments are refused here.
  async #handle(conn, msg) {
    const { id, op, args = {} } = msg;
    switch (op) {
      case 'start': {
        this.#starting ??= this.#start(args);
        await this.#starting;
        const out = this.invoke('pools.put', { pools: args.pools });
        return this.#reply(conn, id, out.ok && { ...out.ok, persistent: this.#db !== null }, out.error);
      }
      case 'bye':
        return this.#bye(conn);
      case 'hello':
        return this.#watchTab(conn, args.lock);
    }
    if (!this.#ready) return this.#reply(conn, id, null, { code: 'invalid_state', message: 'call start first' });
    switch (op) {
      case 'flush':
        // Not awaited: the requests behind it need not wait for IndexedDB.
        this.#writes.then(() => this.#reply(conn, id, {}));
        return;
      case 'bench':
        return this.#reply(conn, id, bench(this, args));
      case 'mailbox':
        return this.#reply(conn, id, null, { code: 'invalid_request', field: 'wait', message: `wait must be a number of milliseconds from 0 to ${MAX_WAIT_MS}, got ${JSON.stringify(args.wait)}` });
      default:
        return this.#reply(conn, id, null, { code: 'invalid_request', field: 'op', message: `unknown operation ${JSON.stringify(op)}` });
    }
  }

  // watchTab learns of a tab's end however it ends (closed, crashed,
  // navigated away): the tab holds a Web Lock of its own for as long as it
  // lives, and the worker is granted it only then.
  #watchTab(conn, lock) {
    if (!lock || !globalThis.navigator?.locks) return;
    navigator.locks.request(lock, () => this.#bye(conn));
  }

  // bye ends a connection: its permits that are running or still parked
  // are cancelled, so that their slots free now rather than at the end of
  // their leases; its long polls are dropped.
  #bye(conn) {
    if (conn.closed) return;
    conn.closed = true;
    this.#conns.delete(conn);
    if (!this.#ready) return; // nothing of it can run yet
    for (const [taskId, p] of this.#pending) {
      if (p.conn === conn) {
        this.#pending.delete(taskId);
        this.invoke('cancel', { id: taskId });
      }
    }
    for (const taskId of conn.permits) this.invoke('cancel', { id: taskId });
    conn.permits.clear();
    for (const ws of this.#waiters.values()) for (const w of [...ws]) if (w.conn === conn) this.#unwait(w);
  }

  stop() {
    clearInterval(this.#sweeper);
    for (const ws of this.#waiters.values()) for (const w of ws) clearTimeout(w.timer);
  }
}

// bench measures the scheduler inside the worker, without the messages
// between page and worker: lifecycles per second (submit, started at once,
// complete) and wake latency (release of a slot to the commit of the next
// parked task's start, from core's Observer, as pkg/core/coretest's
// BenchWake measures it natively: 16 slots, n tasks submitted first, each
// completed as soon as its started message is read).
function bench(host, { mode, n }) {
  const pool = `bench-${mode}-${Math.random().toString(36).slice(2, 8)}`;
  const recipient = pool;
  const put = host.invoke('pools.put', { pools: [{ name: pool, capacity: mode === 'wake' ? 16 : 1 << 20, maxParked: 1 << 30, defaultMaxWait: '1h', runTimeout: '1h' }] });
  if (put.error) throw new Error(put.error.message);
  const must = (out) => { if (out.error) throw new Error(out.error.message); return out.ok; };
  if (mode === 'core') {
    return must(host.invoke('bench.core', { n }));
  }
  if (mode === 'lifecycle') {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const t = must(host.invoke('submit', { pool, recipient })).task;
      must(host.invoke('complete', { id: t.id, lease: t.lease, status: 'succeeded' }));
    }
    const ms = performance.now() - t0;
    return { n, ms, perSecond: n / (ms / 1000) };
  }
  for (let i = 0; i < n; i++) must(host.invoke('submit', { pool, recipient }));
  host.invoke('stats'); // clear what came before
  let after = '';
  let done = 0;
  const t0 = performance.now();
  while (done < n) {
    const page = must(host.invoke('mailbox', { recipient, after, limit: 1000 }));
    if (page.messages.length === 0) throw new Error(`bench: ${n - done} tasks never started`);
    after = page.next;
    for (const m of page.messages) {
      if (m.type !== 'started') continue;
      must(host.invoke('complete', { id: m.taskId, lease: m.lease, status: 'succeeded' }));
      done++;
    }
  }
  const ms = performance.now() - t0;
  const wakes = must(host.invoke('stats')).wakeMicros.sort((a, b) => a - b);
  const pct = (p) => wakes[Math.floor(p * (wakes.length - 1))];
  return { n, ms, perSecond: n / (ms / 1000), wakes: wakes.length, p50: pct(0.5), p95: pct(0.95), p99: pct(0.99) };
}
