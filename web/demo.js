// The demo page: two pools in a SharedWorker (one capacity across every tab
// of this origin; ?shared=0 for a dedicated worker), buttons that submit
// bursts of permits, a live view of running and parked per pool and the
// audit trail. It keeps its own observations of each permit it held (when
// it started and ended on the page's clock, and the outcome messages of its
// mailbox) as window.demo, which tests/web reads.
import { Parkinglot } from './parkinglot.js';

const POOLS = [
  { name: 'uploads', capacity: 4, maxParked: 5000, defaultMaxWait: '10m', runTimeout: '1m' },
  { name: 'api', capacity: 8, maxParked: 5000, defaultMaxWait: '10m', runTimeout: '1m' },
];
const params = new URLSearchParams(location.search);
const shared = params.get('shared') !== '0';
const me = `tab-${crypto.randomUUID().slice(0, 8)}`; // this tab's mailbox
const $ = (id) => document.getElementById(id);
// now is a time that every tab of the browser reads alike, in milliseconds.
const now = () => performance.timeOrigin + performance.now();

const lot = await Parkinglot.start({ pools: POOLS, shared });
const held = []; // {id, pool, start, end}: this page's permits, on its clock
const outcomes = new Map(); // task id -> outcome messages seen
const started = new Map(); // task id -> started messages seen
let failures = [];

// Read this tab's mailbox for as long as the page lives.
(async () => {
  for await (const m of lot.mailbox(me, { ack: true })) {
    const into = m.type === 'started' ? started : outcomes;
    into.set(m.taskId, (into.get(m.taskId) ?? 0) + 1);
  }
})();

// burst acquires n permits of pool at once; each is held holdMs (a random
// part of it) and released. It resolves when all have ended.
async function burst(pool, n, holdMs = 20) {
  const t0 = now();
  const one = async (i) => {
    let permit;
    try {
      permit = await lot.acquire(pool, { recipient: me, payload: { i } });
    } catch (err) {
      failures.push(`${err.code}: ${err.message}`);
      return;
    }
    const rec = { id: permit.id, pool, start: now(), end: 0 };
    held.push(rec);
    await new Promise((r) => setTimeout(r, Math.random() * holdMs));
    rec.end = now();
    await permit.release({ i });
  };
  await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  return { n, ms: now() - t0, failures: failures.length };
}

// settled resolves when the mailbox has shown an outcome for every permit
// this page held.
async function settled() {
  while (!held.every((h) => outcomes.has(h.id))) await new Promise((r) => setTimeout(r, 20));
}

window.demo = {
  me, shared, pools: POOLS, burst, settled,
  observations: () => ({ held, failures, started: Object.fromEntries(started), outcomes: Object.fromEntries(outcomes) }),
  lot,
};

// The view.
const poolsEl = $('pools');
for (const p of POOLS) {
  poolsEl.insertAdjacentHTML('beforeend', `<div class="pool"><h2>${p.name} <span class="num" style="font-weight:normal">capacity ${p.capacity}</span></h2>
    <div class="bar" id="bar-${p.name}">${'<div class="slot"></div>'.repeat(p.capacity)}</div>
    <div class="num">running <b id="run-${p.name}">0</b> · parked <b id="park-${p.name}">0</b> · peak seen <b id="peak-${p.name}">0</b></div></div>`);
  const b = document.createElement('button');
  b.textContent = `burst → ${p.name}`;
  b.onclick = () => burst(p.name, Number($('n').value), Number($('hold').value));
  $('buttons').append(b);
}
const peak = {};
// The audit trail is followed from the time of the last event read (from
// is inclusive: events of that instant already shown are skipped).
let auditFrom = new Date(Date.now() - 60000).toISOString();
let trail = [];
let seenAtFrom = new Set();
const eventKey = (e) => `${e.at} ${e.taskId} ${e.type}`;
async function readAudit() {
  let after = '';
  for (;;) {
    const page = await lot.audit({ from: auditFrom, after, limit: 1000 });
    for (const e of page.events) if (!seenAtFrom.has(eventKey(e))) trail.push(e);
    if (!page.next) break;
    after = page.next;
  }
  if (trail.length > 0) {
    auditFrom = trail[trail.length - 1].at;
    seenAtFrom = new Set(trail.filter((e) => e.at === auditFrom).map(eventKey));
    trail = trail.slice(-15);
  }
}
async function refresh() {
  try {
    for (const p of await lot.pools()) {
      if (!$(`run-${p.name}`)) continue;
      peak[p.name] = Math.max(peak[p.name] ?? 0, p.running);
      $(`run-${p.name}`).textContent = p.running;
      $(`park-${p.name}`).textContent = p.parked;
      $(`peak-${p.name}`).textContent = peak[p.name];
      [...$(`bar-${p.name}`).children].forEach((s, i) => s.classList.toggle('on', i < p.running));
    }
    await readAudit();
    $('audit').innerHTML = [...trail].reverse().map((e) =>
      `<tr><td>${e.at.slice(11, 23)}</td><td>${e.pool}</td><td>${e.taskId.slice(0, 8)}</td><td>${e.type}</td><td>${e.from || '∅'} → ${e.to}</td></tr>`).join('');
    const done = held.filter((h) => h.end).length;
    $('summary').textContent = `this tab (${me}): ${held.length} permits held, ${done} released, ${outcomes.size} outcomes in its mailbox, ${failures.length} refused`;
  } catch (err) {
    $('status').textContent = `error: ${err.message}`;
  }
}
// ?view=0 leaves the view still (the benchmarks: its reads of the audit
// trail would compete with what they measure).
if (params.get('view') !== '0') setInterval(refresh, 250);
await refresh();
$('status').textContent = shared ? 'scheduler in a SharedWorker: open this page in another tab, and the two share each pool\'s capacity' : 'scheduler in a dedicated worker';
window.demo.ready = true;
