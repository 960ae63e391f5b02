// Benchmarks of the web runtime inside its worker, in Node (a worker
// thread): `make wasm && node web/bench.js [n] [runs]`. Prints one JSON
// line per run and mode. docs/benchmarks.md quotes the medians; tests/web's
// BenchmarkBrowser measures the same in headless Chromium.
//   core:      n lifecycles (submit, started at once, complete) on core
//              directly, inside the wasm: the scheduler's own cost.
//   lifecycle: the same through the bridge (JSON in and out of the wasm),
//              as the worker runs every request of a page.
//   wake:      release of a slot to the commit of the next parked task's
//              start, from core's Observer (16 slots, n tasks, each
//              completed when its started message is read).
//   page:      from the page, through the messages to the worker: n
//              permits acquired at once from a pool of 16 slots, each
//              released as soon as it starts; timed on the page.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = resolve(process.env.PARKINGLOT_WEB_DIR ?? new URL('../dist/web', import.meta.url).pathname);
const { Parkinglot } = await import(pathToFileURL(`${dir}/parkinglot.js`).href);
const n = Number(process.argv[2] ?? 20000);
const runs = Number(process.argv[3] ?? 3);
for (let run = 1; run <= runs; run++) {
  for (const mode of ['core', 'lifecycle', 'wake']) {
    // A fresh worker for each: the memory store keeps every task, and the
    // heap that one mode leaves would slow the next one's collections.
    const lot = await Parkinglot.start({ pools: [{ name: 'idle', capacity: 1 }], persist: false });
    console.log(JSON.stringify({ run, mode, ...(await lot.bench(mode, n)) }));
    lot.close();
  }
  const lot = await Parkinglot.start({ pools: [{ name: 'page', capacity: 16, maxParked: n }], persist: false });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, async () => (await lot.acquire('page', { heartbeat: false })).release()));
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ run, mode: 'page', n, ms, perSecond: n / (ms / 1000) }));
  lot.close();
}
