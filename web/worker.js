// The worker script of Parkinglot's web runtime, for a dedicated Worker, a
// SharedWorker, or a Node worker thread (Node's tests). It finds the wasm
// and Go's wasm_exec.js beside itself.
import { Host } from './engine.js';

const host = new Host({
  wasmURL: new URL('./parkinglot.wasm', import.meta.url),
  execURL: new URL('./wasm_exec.js', import.meta.url).href,
});

if (typeof SharedWorkerGlobalScope !== 'undefined' && globalThis instanceof SharedWorkerGlobalScope) {
  globalThis.onconnect = (ev) => host.serve(ev.ports[0]);
} else if (typeof WorkerGlobalScope !== 'undefined' && globalThis instanceof WorkerGlobalScope) {
  host.serve(globalThis);
} else {
  const { parentPort } = await import('node:worker_threads');
  host.serve({ postMessage: (m) => parentPort.postMessage(m), set onmessage(f) { parentPort.on('message', (data) => f({ data })); } });
}
